// Package deployments holds no code the relay runs: it is the home of
// the deployment files (Dockerfile, docker-compose.yml, Kubernetes
// manifests, ClickHouse cluster DDL and grants, the systemd unit, the
// Grafana dashboard) and of the tests that keep them honest.
//
// The tests check what can be checked without a container engine or a
// cluster: every YAML file parses; every Kubernetes object has
// apiVersion, kind and metadata.name, and its probes point at /healthz
// and /readyz; the compose file refers only to services, volumes,
// secrets and files that exist; the relay configurations they ship are
// accepted by the binary's own config loader (through `go run .
// check-config`); the Grafana dashboard parses and queries only metrics
// the Go code registers; the ClickHouse DDL mirrors the binary's
// migrations (its schema_migrations records carry the checksums of the
// embedded files) and, on a private ClickHouse with a one-shard cluster,
// the binary's archive passes its conformance suite over the Distributed
// tables.
//
// See README.md in this folder for how to deploy each way.
package deployments
