// helm-render: a TEST renderer for deploy/kubernetes/helm/vibebox, NOT helm. No helm binary can be
// fetched where VibeBox is tested, so this renders a chart the way `helm template` does, with
// Helm's own function library: Go's text/template, Sprig v3's TxtFuncMap minus env/expandenv,
// and Helm's additions (include, tpl, toYaml, fromYaml, fromYamlArray, toJson, fromJson,
// fromJsonArray, required, lookup answering an empty map as `helm template` does) over
// sigs.k8s.io/yaml, with missingkey=zero and "<no value>" removed, as Helm's engine does.
// .Values is values.yaml deep-merged with each -f file (null removes a key), then each --set and
// --set-string in order. --set follows helm's strvals parser (pkg/strvals) for scalars: several
// assignments split at unescaped commas (a=1,b=2), keys at unescaped dots, a backslash escapes
// the next character; values typed as helm's typedVal does: true, false and null in any case, 0,
// and base-10 integers not starting with 0 become int64 (0755 and 1.5 stay strings); --set-string
// keeps every value a string. Not implemented (an error, never a silent difference): list
// indexes (a[0]=x) and list values ({a,b}). .Release, .Chart (Chart.yaml), .Capabilities
// (a fixed Kubernetes 1.30) and .Template are Helm's. Templates named _* are not rendered, and
// NOTES.txt goes to stderr with -notes, never into the manifest stream. Not implemented:
// subcharts, .Files, hook ordering (hooks are printed with the rest, as `helm template` does),
// --show-only, schema validation. Where helm exists, `helm lint` and
// `helm template` are the real checks (docs/kubernetes.md).
//
// The template functions and YAML library are Sprig v3 and sigs.k8s.io/yaml as Debian packages them
// (possibly other versions than a given helm release vendors), so their behaviour is helm's only as
// far as those versions agree.
//
// Usage: helm-render [-name vibebox] [-namespace vibebox] [-f values.yaml]... [--set a.b=c,d=e]...
// [--set-string a.b=c]... [-notes] CHART (a directory).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/template"

	// Sprig v3 (module github.com/Masterminds/sprig/v3, what helm 3 imports): Debian installs it at
	// the unversioned path, which is the one GOPATH mode resolves.
	"github.com/Masterminds/sprig"
	"sigs.k8s.io/yaml"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

// assignment is one --set or --set-string argument, in command-line order.
type assignment struct {
	text    string
	strings bool
}

type assignments []assignment

// typed is the flag.Value of --set (strings false) and --set-string (strings true).
type typed struct {
	to      *assignments
	strings bool
}

func (t typed) String() string { return "" }
func (t typed) Set(v string) error {
	*t.to = append(*t.to, assignment{v, t.strings})
	return nil
}

// versions is .Capabilities.APIVersions: Has answers true for the groups the chart uses.
type versions []string

func (v versions) Has(name string) bool {
	for _, have := range v {
		if have == name {
			return true
		}
	}
	return false
}

func main() {
	name := flag.String("name", "vibebox", "release name")
	namespace := flag.String("namespace", "vibebox", "release namespace")
	notes := flag.Bool("notes", false, "print NOTES.txt, rendered, to stderr")
	var valueFiles list
	var sets assignments
	flag.Var(&valueFiles, "f", "a values file (repeatable; later wins)")
	flag.Var(typed{&sets, false}, "set", "a.b.c=value[,d=value] (repeatable; helm's typing)")
	flag.Var(typed{&sets, true}, "set-string", "a.b.c=value[,d=value] (repeatable; strings)")
	flag.Parse()
	if flag.NArg() != 1 {
		fail(errors.New("usage: helm-render [flags] CHART"))
	}
	files, err := load(flag.Arg(0))
	fail(err)
	out, note, err := render(files, *name, *namespace, valueFiles, sets)
	fail(err)
	fmt.Print(out)
	if *notes {
		fmt.Fprint(os.Stderr, note)
	}
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

// load answers every file of the chart's directory by its slash path.
func load(from string) (map[string]string, error) {
	files := map[string]string{}
	err := filepath.WalkDir(from, func(file string, entry fs.DirEntry, err error) error {
		if err != nil || entry.IsDir() {
			return err
		}
		data, err := os.ReadFile(file)
		files[filepath.ToSlash(file)] = string(data)
		return err
	})
	return files, err
}

func render(files map[string]string, name, namespace string, valueFiles []string, sets assignments) (string, string, error) {
	chartDir := ""
	for file := range files {
		if path.Base(file) == "Chart.yaml" && (chartDir == "" || len(file) < len(chartDir)) {
			chartDir = path.Dir(file)
		}
	}
	chart := map[string]interface{}{}
	if err := yaml.Unmarshal([]byte(files[path.Join(chartDir, "Chart.yaml")]), &chart); err != nil || chart["name"] == nil {
		return "", "", fmt.Errorf("no valid Chart.yaml: %v", err)
	}
	values := map[string]interface{}{}
	for _, file := range append([]string{path.Join(chartDir, "values.yaml")}, valueFiles...) {
		more := map[string]interface{}{}
		text, ok := files[file]
		if !ok && file == path.Join(chartDir, "values.yaml") {
			continue // a chart may have no values.yaml
		} else if !ok {
			data, err := os.ReadFile(file)
			if err != nil {
				return "", "", err
			}
			text = string(data)
		}
		if err := yaml.Unmarshal([]byte(text), &more); err != nil {
			return "", "", fmt.Errorf("%s: %v", file, err)
		}
		values = merge(values, more)
	}
	for _, set := range sets {
		parsed, err := parseSet(set.text, set.strings)
		if err != nil {
			return "", "", err
		}
		for _, one := range parsed {
			values = merge(values, nested(one.keys, one.value))
		}
	}
	// Chart.yaml's keys as Helm's Metadata fields: name -> .Chart.Name, appVersion -> .Chart.AppVersion.
	meta := map[string]interface{}{}
	for key, value := range chart {
		meta[strings.ToUpper(key[:1])+key[1:]] = value
	}
	meta["APIVersion"] = chart["apiVersion"]
	top := map[string]interface{}{
		"Values":  values,
		"Release": map[string]interface{}{"Name": name, "Namespace": namespace, "Service": "Helm", "IsInstall": true, "IsUpgrade": false, "Revision": 1},
		"Chart":   meta,
		"Capabilities": map[string]interface{}{
			"KubeVersion": map[string]interface{}{"Version": "v1.30.0", "Major": "1", "Minor": "30", "GitVersion": "v1.30.0"},
			"APIVersions": versions{"v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v2", "networking.k8s.io/v1", "rbac.authorization.k8s.io/v1"},
		},
	}

	root := template.New("gotpl")
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	for key, value := range helmFuncs(root) {
		funcs[key] = value
	}
	root.Funcs(funcs).Option("missingkey=zero")
	chartName := fmt.Sprint(chart["name"])
	var names []string
	for file, text := range files {
		if !strings.HasPrefix(file, path.Join(chartDir, "templates")+"/") {
			continue
		}
		named := chartName + "/" + strings.TrimPrefix(file, chartDir+"/")
		if _, err := root.New(named).Parse(text); err != nil {
			return "", "", err
		}
		names = append(names, named)
	}
	sort.Strings(names)
	var out, notes strings.Builder
	for _, named := range names {
		base := path.Base(named)
		if strings.HasPrefix(base, "_") {
			continue
		}
		top["Template"] = map[string]interface{}{"Name": named, "BasePath": chartName + "/templates"}
		var buf strings.Builder
		if err := root.ExecuteTemplate(&buf, named, top); err != nil {
			return "", "", err
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if base == "NOTES.txt" {
			notes.WriteString(text)
		} else if strings.TrimSpace(text) != "" {
			fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", named, strings.TrimRight(text, "\n"))
		}
	}
	return out.String(), notes.String(), nil
}

// helmFuncs are what Helm's engine adds to Sprig (helm/pkg/engine/funcs.go and engine.go).
func helmFuncs(root *template.Template) template.FuncMap {
	return template.FuncMap{
		"include": func(name string, data interface{}) (string, error) {
			var buf strings.Builder
			err := root.ExecuteTemplate(&buf, name, data)
			return buf.String(), err
		},
		"tpl": func(text string, data interface{}) (string, error) {
			clone, err := root.Clone()
			if err == nil {
				_, err = clone.New("tpl").Parse(text)
			}
			var buf strings.Builder
			if err == nil {
				err = clone.ExecuteTemplate(&buf, "tpl", data)
			}
			return strings.ReplaceAll(buf.String(), "<no value>", ""), err
		},
		"required": func(message string, value interface{}) (interface{}, error) {
			if text, ok := value.(string); value == nil || ok && text == "" {
				return value, errors.New(message)
			}
			return value, nil
		},
		"lookup": func(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
			return map[string]interface{}{}, nil
		},
		"toYaml": func(value interface{}) string {
			data, err := yaml.Marshal(value)
			if err != nil {
				return ""
			}
			return strings.TrimSuffix(string(data), "\n")
		},
		"fromYaml": func(text string) map[string]interface{} {
			out := map[string]interface{}{}
			if err := yaml.Unmarshal([]byte(text), &out); err != nil {
				out["Error"] = err.Error()
			}
			return out
		},
		"fromYamlArray": func(text string) []interface{} {
			var out []interface{}
			if err := yaml.Unmarshal([]byte(text), &out); err != nil {
				out = []interface{}{err.Error()}
			}
			return out
		},
		"toJson": func(value interface{}) string {
			data, err := json.Marshal(value)
			if err != nil {
				return ""
			}
			return string(data)
		},
		"fromJson": func(text string) map[string]interface{} {
			out := map[string]interface{}{}
			if err := json.Unmarshal([]byte(text), &out); err != nil {
				out["Error"] = err.Error()
			}
			return out
		},
		"fromJsonArray": func(text string) []interface{} {
			var out []interface{}
			if err := json.Unmarshal([]byte(text), &out); err != nil {
				out = []interface{}{err.Error()}
			}
			return out
		},
	}
}

// merge is Helm's coalescing of values: maps merge key by key, anything else is replaced, and a
// null removes the key.
func merge(base, over map[string]interface{}) map[string]interface{} {
	out := map[string]interface{}{}
	for key, value := range base {
		out[key] = value
	}
	for key, value := range over {
		if value == nil {
			delete(out, key)
			continue
		}
		inner, isMap := value.(map[string]interface{})
		old, wasMap := out[key].(map[string]interface{})
		if isMap && wasMap {
			out[key] = merge(old, inner)
		} else {
			out[key] = value
		}
	}
	return out
}

func nested(keys []string, value interface{}) map[string]interface{} {
	if len(keys) == 1 {
		return map[string]interface{}{keys[0]: value}
	}
	return map[string]interface{}{keys[0]: nested(keys[1:], value)}
}

type setValue struct {
	keys  []string
	value interface{}
}

// parseSet splits one --set argument as helm's strvals does for scalars: assignments at unescaped
// commas, keys at unescaped dots, a backslash escaping the next character.
func parseSet(text string, asString bool) ([]setValue, error) {
	var out []setValue
	runes := []rune(text)
	for i := 0; i < len(runes); {
		var keys []string
		var key []rune
		for ; ; i++ {
			if i == len(runes) {
				return nil, fmt.Errorf("--set %q: key %q has no value", text, string(key))
			}
			r := runes[i]
			if r == '\\' && i+1 < len(runes) {
				i++
				key = append(key, runes[i])
				continue
			}
			if r == '[' {
				return nil, fmt.Errorf("--set %q: list indexes are not implemented by the test renderer", text)
			}
			if r == ',' {
				return nil, fmt.Errorf("--set %q: key %q has no value", text, string(key))
			}
			if r == '.' || r == '=' {
				keys = append(keys, string(key))
				key = nil
				if r == '=' {
					i++
					break
				}
				continue
			}
			key = append(key, r)
		}
		var value []rune
		for ; i < len(runes) && runes[i] != ','; i++ {
			if runes[i] == '\\' && i+1 < len(runes) {
				i++
			}
			value = append(value, runes[i])
		}
		i++ // the comma
		if !asString && len(value) > 0 && value[0] == '{' {
			return nil, fmt.Errorf("--set %q: list values are not implemented by the test renderer", text)
		}
		for _, key := range keys {
			if key == "" {
				return nil, fmt.Errorf("--set %q: an empty key", text)
			}
		}
		out = append(out, setValue{keys, scalar(string(value), asString)})
	}
	return out, nil
}

// scalar types a --set value as helm's strvals typedVal does: true, false and null in any case;
// 0, and base-10 integers that do not start with 0, as int64; anything else a string. --set-string
// (asString) keeps it a string.
func scalar(text string, asString bool) interface{} {
	if asString {
		return text
	}
	switch {
	case strings.EqualFold(text, "true"):
		return true
	case strings.EqualFold(text, "false"):
		return false
	case strings.EqualFold(text, "null"):
		return nil
	case text == "0":
		return int64(0)
	}
	if text != "" && text[0] != '0' {
		if number, err := strconv.ParseInt(text, 10, 64); err == nil {
			return number
		}
	}
	return text
}
