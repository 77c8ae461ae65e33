// Package configs is the relay's configuration: the Config type and the
// YAML file it is read from (relay.example.yaml in this folder documents
// every key), the WR_* environment overrides, the secrets that only ever
// come from the environment or from files named by *_FILE variables, the
// embedded demo defaults a first run uses, and the checks that
// check-config and serve run before anything is opened (Check).
//
// It also gives each part of the relay its own view of the
// configuration (GatewayConfig, ConsoleConfig, DirectorySeed, the
// compiled lexicon, the retention policies) and the writer id an
// instance seals the archive under (WriterID), so that the wiring in
// deployments/system and the commands in deployments/commands read one
// definition of each.
package configs
