package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wechat-relay/wechat-relay/configs"
	"github.com/wechat-relay/wechat-relay/deployments/commands"
	"github.com/wechat-relay/wechat-relay/deployments/commands/cmdtest"
	"github.com/wechat-relay/wechat-relay/deployments/system"
	"github.com/wechat-relay/wechat-relay/relay"
	"github.com/wechat-relay/wechat-relay/relay/export"
	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// An export of a conversation a real relay archived and sealed: every
// row is covered by a seal the manifest names, with the hash the archive
// keeps, and the archive still verifies.
func TestExportOfARelaysConversation(t *testing.T) {
	for _, backend := range []string{"embedded", "clickhouse"} {
		t.Run(backend, func(t *testing.T) {
			dataDir := t.TempDir()
			var ch, db string
			if backend == "clickhouse" {
				if testing.Short() {
					t.Skip("needs ClickHouse")
				}
				ch, db = testenv.ClickHouseAddr(t), testenv.UniqueName("e2e_export")
				t.Cleanup(func() { cmdtest.DropDatabase(t, ch, db) })
			}
			cfg := e2eConfig(t, ch, "", db, "", dataDir)
			// Signed seals: the manifest carries the signatures, which a
			// recipient checks with the public key alone.
			private, public := makeSealKey(t, t.TempDir(), "seal.key")
			cfg.Pipeline.SealKeyFile = private
			acct := simAccount(t, cfg)
			r := startRelay(t, cfg)
			conv := conversationTraffic(t, r, acct.AppID, 4)
			r.stop()
			cfgPath := cmdtest.ArchiveConfig(t, dataDir, ch, db)

			out := filepath.Join(t.TempDir(), "export")
			var stdout, stderr bytes.Buffer
			code := commands.Run([]string{"export", "-config", cfgPath, "-conv", string(conv), "-out", out, "-by", "e2e"},
				&stdout, &stderr, func(string) string { return "" })
			if code != 0 { // 0: written
				t.Fatalf("export: exit %d\n%s%s", code, stdout.String(), stderr.String())
			}
			var man export.Manifest
			b, err := os.ReadFile(filepath.Join(out, "manifest.json"))
			if err == nil {
				err = json.Unmarshal(b, &man)
			}
			if err != nil {
				t.Fatal(err)
			}
			// The client's subscribe and 4 messages, alice's 2 answers.
			if man.Counts.Messages < 7 || man.Counts.Events == 0 || len(man.Unsealed) != 0 || len(man.Seals) == 0 {
				t.Fatalf("manifest counts %+v, %d seals, unsealed %v", man.Counts, len(man.Seals), man.Unsealed)
			}
			// Every row's batch has its seal in the manifest, with the
			// archive's hash.
			a, _, err := system.OpenReadOnly(context.Background(), mustLoad(t, cfgPath))
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			named := map[string]string{}
			var ids []string
			for _, s := range man.Seals {
				named[s.ID] = s.Hash
				ids = append(ids, s.ID)
			}
			pemKeys, err := os.ReadFile(public)
			if err != nil {
				t.Fatal(err)
			}
			pubs, err := relay.ParseSealPublicKeys(pemKeys)
			if err != nil || len(pubs) != 1 {
				t.Fatalf("public key: %v", err)
			}
			keys := map[string]ed25519.PublicKey{relay.SealKeyID(pubs[0]): pubs[0]}
			for _, s := range man.Seals {
				seal := relay.Seal{Hash: s.Hash, KeyID: s.KeyID, Signature: s.Signature}
				if st := relay.CheckSealSignature(seal, keys); st != relay.SignatureValid {
					t.Errorf("manifest seal %s: signature %v", s.ID, st)
				}
			}
			stored, err := a.SealsByID(context.Background(), ids)
			if err != nil || len(stored) != len(ids) {
				t.Fatalf("SealsByID: %d of %d, %v", len(stored), len(ids), err)
			}
			for _, s := range stored {
				if named[s.ID] != s.Hash || s.ComputeHash() != s.Hash {
					t.Errorf("seal %s: manifest %s, archive %s", s.ID, named[s.ID], s.Hash)
				}
			}
			for _, name := range []string{"messages.jsonl", "events.jsonl"} {
				data, err := os.ReadFile(filepath.Join(out, name))
				if err != nil {
					t.Fatal(err)
				}
				for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
					var row struct {
						ID      string `json:"id"`
						BatchID string `json:"batch_id"`
					}
					json.Unmarshal([]byte(line), &row)
					if _, ok := named[row.BatchID]; !ok {
						t.Errorf("%s: %s in batch %q, whose seal the manifest lacks", name, row.ID, row.BatchID)
					}
				}
			}
			if code, rep := runVerify(t, cfgPath); code != 0 || !rep.OK {
				t.Errorf("verify after the export: exit %d", code)
			}
		})
	}
}

func mustLoad(t *testing.T, path string) *configs.Config {
	t.Helper()
	cfg, err := configs.Load(path, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
