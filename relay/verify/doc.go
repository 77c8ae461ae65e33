// Package verify is the check behind `wechat-relay verify`: it reads the
// archive and recomputes every row's hash, every seal's Merkle root and
// hash, and every link of each writer's seal chains (relay/seal.go
// describes the seals and their canonical encoding), and reports every
// row that is missing, altered or inserted, and every seal that is
// altered, missing or out of its chain. With the writers' public keys
// it checks the seals' Ed25519 signatures too; with the seal hashes an
// outside witness kept, that each is still there.
//
// Archive reads through Source (both archives in storage implement it)
// and streams: a chunk of seals and their rows at a time. It only
// reads, and may run while relays write. The kinds of problem
// (relay.ProblemKind) and the signature and witness reports are relay's,
// shared with the audit log's check (relay.VerifyAudit).
package verify
