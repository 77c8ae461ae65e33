package deployments

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metricDef is a metric the Go code registers: prometheus.NewX(Opts{Name:
// ...}, []string{labels...}).
type metricDef struct {
	kind   string // Counter, Gauge, Histogram, Summary (with or without Vec)
	labels []string
	where  string
}

// codeMetrics finds every metric the repository's non-test Go code
// creates through prometheus.New*.
func codeMetrics(t *testing.T) map[string]metricDef {
	t.Helper()
	out := map[string]metricDef{}
	fset := token.NewFileSet()
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != ".." || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || !strings.HasPrefix(sel.Sel.Name, "New") || len(call.Args) == 0 {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "prometheus" {
				return true
			}
			opts, ok := call.Args[0].(*ast.CompositeLit)
			if !ok {
				return true
			}
			var def metricDef
			name := ""
			for _, e := range opts.Elts {
				kv, ok := e.(*ast.KeyValueExpr)
				if !ok {
					continue
				}
				if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Name" {
					if lit, ok := kv.Value.(*ast.BasicLit); ok {
						name, _ = strconv.Unquote(lit.Value)
					}
				}
			}
			if name == "" {
				return true
			}
			def.kind = strings.TrimPrefix(sel.Sel.Name, "New")
			def.where = fset.Position(call.Pos()).String()
			if len(call.Args) > 1 {
				if labels, ok := call.Args[1].(*ast.CompositeLit); ok {
					for _, e := range labels.Elts {
						if lit, ok := e.(*ast.BasicLit); ok {
							s, _ := strconv.Unquote(lit.Value)
							def.labels = append(def.labels, s)
						}
					}
				}
			}
			out[name] = def
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// runtimeMetrics are the names the Go and process collectors export, as
// deployments/system/system.go registers them.
func runtimeMetrics(t *testing.T) map[string]bool {
	t.Helper()
	serve := mustRead(t, "system/system.go")
	if !strings.Contains(serve, "collectors.NewGoCollector()") || !strings.Contains(serve, "collectors.NewProcessCollector(") {
		t.Fatal("deployments/system/system.go no longer registers the Go and process collectors; update the dashboard's runtime panels")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, mf := range mfs {
		out[mf.GetName()] = true
	}
	return out
}

var (
	metricRE   = regexp.MustCompile(`\b((?:wechat_relay|go|process)_[a-z0-9_]+)\b`)
	byRE       = regexp.MustCompile(`\bby\s*\(([^)]*)\)`)
	matcherRE  = regexp.MustCompile(`([a-z_]+)\s*(?:=~|!~|!=|=)\s*"`)
	selectorRE = regexp.MustCompile(`\b(wechat_relay_[a-z0-9_]+)\{([^}]*)\}`)
)

// TestGrafanaDashboard checks that the dashboard parses, that every metric
// it queries is one the binary exports (with the labels it groups and
// filters by), and that every wechat_relay_ metric of the code is shown.
func TestGrafanaDashboard(t *testing.T) {
	data, err := os.ReadFile("grafana/wechat-relay.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID       string `json:"uid"`
		Title     string `json:"title"`
		Templates struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("grafana/wechat-relay.json: %v", err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Error("the dashboard needs a uid and a title")
	}
	code := codeMetrics(t)
	if len(code) < 10 {
		t.Fatalf("found only %d metrics in the Go code: %v", len(code), code)
	}
	runtime := runtimeMetrics(t)

	var exprs []string
	for _, p := range dash.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range dash.Templates.List {
		if v.Definition != "" {
			exprs = append(exprs, v.Definition)
		}
	}
	shown := map[string]bool{}
	// Labels Prometheus adds on scrape, and the histogram bucket label.
	extra := []string{"job", "instance", "le"}
	for _, e := range exprs {
		for _, m := range metricRE.FindAllString(e, -1) {
			if !strings.HasPrefix(m, "wechat_relay_") {
				base := strings.TrimSuffix(strings.TrimSuffix(m, "_count"), "_sum")
				if !runtime[m] && !runtime[base] {
					t.Errorf("%q queries %s, which the Go and process collectors do not export", e, m)
				}
				continue
			}
			base, def, ok := m, code[m], false
			if _, ok = code[m]; !ok {
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					if b, cut := strings.CutSuffix(m, suf); cut {
						if d, found := code[b]; found && strings.HasPrefix(d.kind, "Histogram") {
							base, def, ok = b, d, true
						}
					}
				}
			}
			if !ok {
				t.Errorf("%q queries %s, which the Go code does not export", e, m)
				continue
			}
			shown[base] = true
			_ = def
		}
		// Labels in by (...) must belong to every wechat_relay_ metric of
		// the expression; labels in a selector to that metric.
		var metrics []string
		for _, m := range metricRE.FindAllString(e, -1) {
			if strings.HasPrefix(m, "wechat_relay_") {
				metrics = append(metrics, strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count"))
			}
		}
		for _, by := range byRE.FindAllStringSubmatch(e, -1) {
			for _, l := range strings.Split(by[1], ",") {
				l = strings.TrimSpace(l)
				for _, m := range metrics {
					if d, ok := code[m]; ok && !slices.Contains(d.labels, l) && !slices.Contains(extra, l) {
						t.Errorf("%q groups %s by %q, a label it does not have (%v)", e, m, l, d.labels)
					}
				}
			}
		}
		for _, sel := range selectorRE.FindAllStringSubmatch(e, -1) {
			m := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(sel[1], "_bucket"), "_sum"), "_count")
			d, ok := code[m]
			if !ok {
				continue
			}
			for _, lm := range matcherRE.FindAllStringSubmatch(sel[2], -1) {
				if !slices.Contains(d.labels, lm[1]) && !slices.Contains(extra, lm[1]) {
					t.Errorf("%q filters %s on %q, a label it does not have (%v)", e, m, lm[1], d.labels)
				}
			}
		}
	}
	for name, def := range code {
		if strings.HasPrefix(name, "wechat_relay_") && !shown[name] {
			t.Errorf("%s (%s) is not on the dashboard: add a panel to deployments/grafana/wechat-relay.json", name, def.where)
		}
	}
}
