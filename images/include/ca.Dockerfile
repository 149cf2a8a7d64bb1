# The first steps of every built-in template (included by `# vibebox:include ca`): its base image,
# then the extra CA certificates (e.g. a TLS-intercepting proxy's) in the system store before
# anything is downloaded; they stay there for the sandbox's own traffic. The builder passes
# --build-arg BASE_IMAGE=<base image> and puts extra-ca.crt (possibly empty) in the context.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}

COPY extra-ca.crt /usr/local/share/ca-certificates/vibebox-extra.crt
RUN if [ -s /usr/local/share/ca-certificates/vibebox-extra.crt ]; then \
        update-ca-certificates; \
    else \
        rm -f /usr/local/share/ca-certificates/vibebox-extra.crt; \
    fi
