// GraphiQL on /graphql for a signed-in browser: the session cookie authenticates, the CSRF token
// (from the page) lets POSTs through, exactly as for the dashboard's own requests.
(function () {
  const root = document.getElementById("graphiql");
  const endpoint = root.dataset.endpoint;
  const csrf = root.dataset.csrf;
  const fetcher = GraphiQL.createFetcher({
    url: endpoint,
    headers: { "X-CSRFToken": csrf },
  });
  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: "query {\n  viewer {\n    username\n    organization { slug name }\n  }\n}\n",
    }),
  );
})();
