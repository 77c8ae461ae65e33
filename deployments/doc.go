// Package deployments is the home of the deployment files (Dockerfile,
// docker-compose.yml, Kubernetes manifests, ClickHouse cluster DDL and
// grants, the systemd unit, the Grafana dashboard) and of the tests that
// keep them honest. This package itself holds no code the relay runs.
//
// Its subfolders hold what puts the relay together as a process, since
// the top level of the repository is fixed: system (building one relay
// from its configuration and running its workers), commands (the command
// line main.go calls), e2e (the end-to-end and browser tests), chaos
// (the chaos suite and the end-to-end benchmark) and healthcheck (the
// container's probe).
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
