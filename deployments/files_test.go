package deployments

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// yamlDocs decodes every document of a YAML file.
func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

// get walks maps and lists: get(doc, "spec", "template", "spec").
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any) string { s, _ := v.(string); return s }

func TestYAMLParses(t *testing.T) {
	t.Parallel()
	n := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path == filepath.Join("compose", "secrets") {
			return filepath.SkipDir
		}
		if ext := filepath.Ext(path); ext == ".yaml" || ext == ".yml" {
			n++
			if len(yamlDocs(t, path)) == 0 {
				t.Errorf("%s: no YAML document", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 8 {
		t.Errorf("only %d YAML files found", n)
	}
}

// relayTimeouts reads shutdown_timeout + pipeline.drain_timeout of a relay
// config (the defaults where unset): the longest a clean stop takes.
func relayStopTime(t *testing.T, data []byte) time.Duration {
	t.Helper()
	var c struct {
		ShutdownTimeout string `yaml:"shutdown_timeout"`
		Pipeline        struct {
			DrainTimeout string `yaml:"drain_timeout"`
		} `yaml:"pipeline"`
	}
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	parse := func(s string, def time.Duration) time.Duration {
		if s == "" {
			return def
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	return parse(c.ShutdownTimeout, 15*time.Second) + parse(c.Pipeline.DrainTimeout, 10*time.Second)
}

// secretEnv checks the WR_*_FILE variables against the accounts and
// employees of a relay config: every secret the config needs has its
// variable.
func checkSecretEnv(t *testing.T, where string, relayYAML []byte, env map[string]string) {
	t.Helper()
	var c struct {
		WeChat struct {
			Accounts []struct{ ID string } `yaml:"accounts"`
		} `yaml:"wechat"`
		Console struct {
			Employees []struct{ ID string } `yaml:"employees"`
		} `yaml:"console"`
		Storage struct {
			ClickHouse struct{ Addr string } `yaml:"clickhouse"`
			Redis      struct{ Addr string } `yaml:"redis"`
		} `yaml:"storage"`
	}
	if err := yaml.Unmarshal(relayYAML, &c); err != nil {
		t.Fatal(err)
	}
	up := func(id string) string {
		return strings.ToUpper(regexp.MustCompile(`[^A-Za-z0-9]`).ReplaceAllString(id, "_"))
	}
	need := []string{"WR_CLICKHOUSE_PASSWORD_FILE", "WR_REDIS_PASSWORD_FILE"}
	for _, a := range c.WeChat.Accounts {
		for _, s := range []string{"APP_SECRET", "TOKEN", "ENCODING_AES_KEY"} {
			need = append(need, "WR_ACCOUNT_"+up(a.ID)+"_"+s+"_FILE")
		}
	}
	for _, e := range c.Console.Employees {
		need = append(need, "WR_CONSOLE_TOKEN_"+up(e.ID)+"_FILE")
	}
	for _, n := range need {
		if env[n] == "" {
			t.Errorf("%s: %s is not set, but the config needs that secret", where, n)
		}
	}
	if c.Storage.ClickHouse.Addr == "" || c.Storage.Redis.Addr == "" {
		t.Errorf("%s: the relay config must name ClickHouse and Redis (the embedded mode is for trials)", where)
	}
}

func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("kubernetes/*.yaml")
	objects := map[string]map[string]any{} // kind/name
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		for _, doc := range yamlDocs(t, f) {
			kind, name := str(doc["kind"]), str(get(doc, "metadata", "name"))
			if str(doc["apiVersion"]) == "" || kind == "" || name == "" {
				t.Errorf("%s: object without apiVersion, kind or metadata.name: %v", f, doc)
				continue
			}
			if kind != "Namespace" && str(get(doc, "metadata", "namespace")) != "wechat-relay" {
				t.Errorf("%s: %s/%s not in namespace wechat-relay", f, kind, name)
			}
			objects[kind+"/"+name] = doc
		}
	}
	for _, want := range []string{"Namespace/wechat-relay", "ConfigMap/wechat-relay-config", "Secret/wechat-relay-secrets",
		"StatefulSet/wechat-relay", "Service/wechat-relay", "Service/wechat-relay-callbacks", "Service/wechat-relay-headless",
		"PodDisruptionBudget/wechat-relay"} {
		if objects[want] == nil {
			t.Errorf("no %s", want)
		}
	}
	sts := objects["StatefulSet/wechat-relay"]
	if sts == nil {
		t.FailNow()
	}
	pod := get(sts, "spec", "template", "spec")
	c := get(pod, "containers", 0)
	for _, p := range []struct{ probe, path string }{
		{"livenessProbe", "/healthz"}, {"readinessProbe", "/readyz"}, {"startupProbe", "/healthz"},
	} {
		if got := str(get(c, p.probe, "httpGet", "path")); got != p.path {
			t.Errorf("%s path = %q, want %q", p.probe, got, p.path)
		}
	}
	if get(c, "securityContext", "readOnlyRootFilesystem") != true || get(c, "securityContext", "allowPrivilegeEscalation") != false ||
		get(pod, "securityContext", "runAsNonRoot") != true {
		t.Error("the relay container must run as non-root, without privilege escalation, on a read-only root filesystem")
	}
	if get(c, "resources", "requests", "memory") == nil || get(c, "resources", "limits", "memory") == nil {
		t.Error("the relay container has no memory request or limit")
	}
	if get(sts, "spec", "volumeClaimTemplates", 0, "metadata", "name") != "data" {
		t.Error("the StatefulSet has no volumeClaimTemplate \"data\" for the spool")
	}
	mounts := map[string]string{}
	for _, m := range get(c, "volumeMounts").([]any) {
		mounts[str(get(m, "mountPath"))] = str(get(m, "name"))
	}
	if mounts["/var/lib/wechat-relay"] != "data" || mounts["/tmp"] == "" {
		t.Errorf("volume mounts %v: want the spool claim at /var/lib/wechat-relay and a writable /tmp", mounts)
	}

	// Grace period > the relay's longest clean stop.
	cfg := []byte(str(get(objects["ConfigMap/wechat-relay-config"], "data", "relay.yaml")))
	grace, _ := get(pod, "terminationGracePeriodSeconds").(int)
	if stop := relayStopTime(t, cfg); time.Duration(grace)*time.Second <= stop {
		t.Errorf("terminationGracePeriodSeconds %d is not longer than shutdown_timeout + drain_timeout (%v)", grace, stop)
	}

	// Secret files: every WR_*_FILE names a key of the Secret, which holds
	// placeholders only.
	secret := objects["Secret/wechat-relay-secrets"]
	env := map[string]string{}
	for _, e := range get(c, "env").([]any) {
		env[str(get(e, "name"))] = str(get(e, "value"))
	}
	checkSecretEnv(t, "statefulset.yaml", cfg, env)
	secretMount := ""
	for path, name := range mounts {
		if name == "secrets" {
			secretMount = path
		}
	}
	for name, path := range env {
		if !strings.HasSuffix(name, "_FILE") {
			continue
		}
		key, ok := strings.CutPrefix(path, secretMount+"/")
		if !ok || get(secret, "stringData", key) == nil {
			t.Errorf("%s=%s: no such key in the Secret mounted at %s", name, path, secretMount)
		}
	}
	for k, v := range get(secret, "stringData").(map[string]any) {
		if !strings.Contains(str(v), "CHANGE_ME") {
			t.Errorf("secret.yaml: %s = %q is not a placeholder; never commit real values", k, v)
		}
	}

	// Services and the PDB select the pods, on a port the pod has.
	labels := get(sts, "spec", "template", "metadata", "labels").(map[string]any)
	selects := func(sel any) bool {
		m, _ := sel.(map[string]any)
		for k, v := range m {
			if labels[k] != v {
				return false
			}
		}
		return len(m) > 0
	}
	for key, obj := range objects {
		switch {
		case strings.HasPrefix(key, "Service/"):
			if !selects(get(obj, "spec", "selector")) {
				t.Errorf("%s does not select the relay pods", key)
			}
			if get(obj, "spec", "ports", 0, "targetPort") != "http" {
				t.Errorf("%s: targetPort should be the pod's port \"http\"", key)
			}
		case strings.HasPrefix(key, "PodDisruptionBudget/"):
			if !selects(get(obj, "spec", "selector", "matchLabels")) {
				t.Errorf("%s does not select the relay pods", key)
			}
		}
	}
	if get(objects["Service/wechat-relay-callbacks"], "spec", "publishNotReadyAddresses") != true {
		t.Error("the callbacks Service must reach relays whose archive is down (publishNotReadyAddresses)")
	}

	// kustomization: lists files that exist, never the Secret template.
	k := yamlDocs(t, "kubernetes/kustomization.yaml")[0]
	for _, r := range get(k, "resources").([]any) {
		if r == "secret.yaml" {
			t.Error("kustomization.yaml must not install the Secret template")
		}
		if _, err := os.Stat(filepath.Join("kubernetes", str(r))); err != nil {
			t.Errorf("kustomization.yaml: %v", err)
		}
	}
}

func TestCompose(t *testing.T) {
	t.Parallel()
	doc := yamlDocs(t, "docker-compose.yml")[0]
	services, _ := doc["services"].(map[string]any)
	volumes, _ := doc["volumes"].(map[string]any)
	secrets, _ := doc["secrets"].(map[string]any)
	configs, _ := doc["configs"].(map[string]any)
	for _, want := range []string{"clickhouse", "redis", "relay1", "relay2", "nginx"} {
		if services[want] == nil {
			t.Errorf("no service %s", want)
		}
	}
	if img := str(get(services, "clickhouse", "image")); !regexp.MustCompile(`^clickhouse/clickhouse-server:(24\.|25\.)`).MatchString(img) {
		t.Errorf("clickhouse image %q: want a current release (24.x or 25.x)", img)
	}
	if img := str(get(services, "redis", "image")); !strings.HasPrefix(img, "redis:7") {
		t.Errorf("redis image %q: want Redis 7", img)
	}
	relayCfg, err := os.ReadFile("compose/relay.yaml")
	if err != nil {
		t.Fatal(err)
	}
	stop := relayStopTime(t, relayCfg)
	spools := map[string]string{}
	for name, s := range services {
		if str(get(s, "image")) == "" && get(s, "build") == nil {
			t.Errorf("service %s has neither image nor build", name)
		}
		if get(s, "healthcheck", "test") == nil {
			t.Errorf("service %s has no healthcheck", name)
		}
		for dep := range asMap(get(s, "depends_on")) {
			if services[dep] == nil {
				t.Errorf("service %s depends on %s, which does not exist", name, dep)
			}
		}
		for _, v := range asList(get(s, "volumes")) {
			src, target, _ := strings.Cut(str(v), ":")
			target, _, _ = strings.Cut(target, ":")
			if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("service %s mounts %s: %v", name, src, err)
				}
			} else if _, ok := volumes[src]; !ok {
				t.Errorf("service %s uses volume %s, not declared", name, src)
			} else if target == "/var/lib/wechat-relay" {
				if other, dup := spools[src]; dup {
					t.Errorf("relays %s and %s share the spool volume %s", other, name, src)
				}
				spools[src] = name
			}
		}
		for _, sec := range asList(get(s, "secrets")) {
			if _, ok := secrets[str(sec)]; !ok {
				t.Errorf("service %s uses secret %s, not declared", name, sec)
			}
		}
		for _, c := range asList(get(s, "configs")) {
			if _, ok := configs[str(get(c, "source"))]; !ok {
				t.Errorf("service %s uses config %v, not declared", name, c)
			}
		}
		if !strings.HasPrefix(name, "relay") {
			continue
		}
		if g, err := time.ParseDuration(str(get(s, "stop_grace_period"))); err != nil || g <= stop {
			t.Errorf("service %s: stop_grace_period %v is not longer than shutdown_timeout + drain_timeout (%v)", name, get(s, "stop_grace_period"), stop)
		}
		env := map[string]string{}
		for k, v := range asMap(get(s, "environment")) {
			env[k] = str(v)
		}
		checkSecretEnv(t, "docker-compose.yml "+name, relayCfg, env)
		for k, v := range env {
			if sec, ok := strings.CutPrefix(v, "/run/secrets/"); strings.HasSuffix(k, "_FILE") && (!ok || !slices.Contains(asList(get(s, "secrets")), any(sec))) {
				t.Errorf("service %s: %s=%s is not one of its secrets", name, k, v)
			}
		}
	}
	if len(spools) != 2 {
		t.Errorf("want one spool volume per relay, got %v", spools)
	}
	for name, s := range secrets {
		f := str(get(s, "file"))
		if !strings.HasPrefix(f, "./compose/secrets/") {
			t.Errorf("secret %s from %s: secrets live in compose/secrets (git-ignored)", name, f)
		}
		base := strings.TrimPrefix(f, "./compose/secrets/")
		if !strings.Contains(mustRead(t, "compose/make-secrets.sh"), "put "+base+" ") {
			t.Errorf("make-secrets.sh does not create %s", base)
		}
	}
	for _, c := range configs {
		if _, err := os.Stat(str(get(c, "file"))); err != nil {
			t.Error(err)
		}
	}
	// nginx balances over exactly the relay services.
	conf := mustRead(t, "compose/nginx.conf")
	for _, m := range regexp.MustCompile(`(?m)^\s*server\s+([a-z0-9]+):8080`).FindAllStringSubmatch(conf, -1) {
		if services[m[1]] == nil || !strings.HasPrefix(m[1], "relay") {
			t.Errorf("nginx upstream %s is not a relay service", m[1])
		}
	}
	for _, want := range []string{"location /wechat/", "location = /api/ws", "location /api/", "proxy_set_header Upgrade $http_upgrade", "proxy_set_header Host $http_host"} {
		if !strings.Contains(conf, want) {
			t.Errorf("nginx.conf lacks %q", want)
		}
	}
}

func asMap(v any) map[string]any {
	switch m := v.(type) {
	case map[string]any:
		return m
	case []any: // depends_on: [a, b]
		out := map[string]any{}
		for _, x := range m {
			out[str(x)] = true
		}
		return out
	}
	return nil
}

func asList(v any) []any { l, _ := v.([]any); return l }

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestNginxConfig runs `nginx -t` on the compose nginx.conf where nginx is
// installed (not required: skipped otherwise). The relay host names become
// 127.0.0.1, and "resolve" (nginx 1.27.3+, newer than Debian's) is dropped.
func TestNginxConfig(t *testing.T) {
	t.Parallel()
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		t.Skip("nginx not installed")
	}
	dir := t.TempDir()
	conf := mustRead(t, "compose/nginx.conf")
	conf = regexp.MustCompile(`relay[12]:8080 resolve`).ReplaceAllString(conf, "127.0.0.1:8080")
	conf = strings.ReplaceAll(conf, "pid /tmp/nginx.pid;", "pid "+dir+"/nginx.pid;")
	conf = strings.Replace(conf, "http {", "http {\n    client_body_temp_path "+dir+"/body;\n    proxy_temp_path "+dir+"/proxy;\n"+
		"    fastcgi_temp_path "+dir+"/fastcgi;\n    uwsgi_temp_path "+dir+"/uwsgi;\n    scgi_temp_path "+dir+"/scgi;", 1)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(nginx, "-t", "-q", "-p", dir, "-c", path, "-e", dir+"/error.log").CombinedOutput()
	if err != nil {
		t.Errorf("nginx -t: %v\n%s", err, out)
	}
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	d := mustRead(t, "Dockerfile")
	for _, want := range []string{
		"FROM golang:${GO_VERSION} AS build", "ARG GO_VERSION=1.26", "CGO_ENABLED=0", "-trimpath",
		"FROM gcr.io/distroless/static-debian12:nonroot", "USER 65532:65532", "EXPOSE 8080",
		`VOLUME ["/var/lib/wechat-relay"]`, "HEALTHCHECK", "http://127.0.0.1:8080/healthz", "./deployments/healthcheck",
		// The version `wechat-relay version` prints is a variable of
		// the commands package, not of main.
		"-X github.com/wechat-relay/wechat-relay/deployments/commands.version=${VERSION}",
	} {
		if !strings.Contains(d, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	unit := mustRead(t, "systemd/wechat-relay.service")
	keys := map[string][]string{}
	for _, line := range strings.Split(unit, "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			keys[k] = append(keys[k], v)
		}
	}
	for k, want := range map[string]string{
		"DynamicUser": "yes", "StateDirectory": "wechat-relay", "ProtectSystem": "strict", "NoNewPrivileges": "yes",
		"Restart": "on-failure", "EnvironmentFile": "/etc/wechat-relay/wechat-relay.env", "PrivateTmp": "yes",
		"ExecStart": "/usr/local/bin/wechat-relay serve",
	} {
		if !slices.Contains(keys[k], want) {
			t.Errorf("%s=%v, want %s", k, keys[k], want)
		}
	}
	if !slices.Contains(keys["Environment"], "WR_DATA_DIR=/var/lib/wechat-relay") {
		t.Error("the spool must live in the StateDirectory (WR_DATA_DIR=/var/lib/wechat-relay)")
	}
	stop, err := time.ParseDuration(strings.Join(keys["TimeoutStopSec"], ""))
	if want := relayStopTime(t, []byte(mustRead(t, "../configs/relay.example.yaml"))); err != nil || stop <= want {
		t.Errorf("TimeoutStopSec=%v is not longer than shutdown_timeout + drain_timeout (%v)", keys["TimeoutStopSec"], want)
	}
}

// relayBinary builds wechat-relay once for the tests that run it.
var (
	relayBinOnce sync.Once
	relayBin     string
	relayBinErr  error
)

func buildRelay(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	relayBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "wr-deploy-bin-")
		if err != nil {
			relayBinErr = err
			return
		}
		cleanupDirs = append(cleanupDirs, dir)
		relayBin = filepath.Join(dir, "wechat-relay")
		cmd := exec.Command("go", "build", "-o", relayBin, ".")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			relayBinErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if relayBinErr != nil {
		t.Fatal(relayBinErr)
	}
	return relayBin
}

// TestRelayConfigsAccepted runs `wechat-relay check-config` on the relay
// configurations the deployments ship, with every secret given the way
// the deployment gives it (a *_FILE variable naming a file).
func TestRelayConfigsAccepted(t *testing.T) {
	bin := buildRelay(t)
	compose := yamlDocs(t, "docker-compose.yml")[0]
	composeEnv := map[string]string{}
	for k, v := range asMap(get(compose, "services", "relay1", "environment")) {
		composeEnv[k] = str(v)
	}
	var k8sCfg string
	k8sEnv := map[string]string{}
	for _, doc := range yamlDocs(t, "kubernetes/configmap.yaml") {
		k8sCfg = str(get(doc, "data", "relay.yaml"))
	}
	for _, doc := range yamlDocs(t, "kubernetes/statefulset.yaml") {
		for _, e := range asList(get(doc, "spec", "template", "spec", "containers", 0, "env")) {
			k8sEnv[str(get(e, "name"))] = str(get(e, "value"))
		}
	}
	for _, tc := range []struct {
		name, config string
		env          map[string]string
	}{
		{"compose", mustRead(t, "compose/relay.yaml"), composeEnv},
		{"kubernetes", k8sCfg, k8sEnv},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "relay.yaml")
			if err := os.WriteFile(cfg, []byte(tc.config), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, "check-config", "-config", cfg)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
			for k := range tc.env {
				if !strings.HasSuffix(k, "_FILE") {
					continue
				}
				value := "test-secret-" + strings.ToLower(k)
				if strings.Contains(k, "ENCODING_AES_KEY") {
					value = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
				}
				f := filepath.Join(dir, k)
				if err := os.WriteFile(f, []byte(value+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				cmd.Env = append(cmd.Env, k+"="+f)
			}
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "configuration OK") {
				t.Errorf("check-config: %v\n%s", err, out)
			}
		})
	}
}
