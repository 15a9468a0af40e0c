package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
)

// forgeTokens is the attack of issue 12 §2, done with the repository's
// files only: the tokens table of backup id is re-encrypted with an extra
// admin token to the recipient the manifest lists, and the manifest's
// sizes, rows and digests are patched to match. (The identity is used only
// to start from the real rows; an attacker could as well write a table
// from scratch.)
func forgeTokens(t *testing.T, repoDir, identityFile, id string) {
	t.Helper()
	mpath := filepath.Join(repoDir, "snapshots", id, "manifest.json")
	raw, err := os.ReadFile(mpath)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var entry map[string]any
	for _, x := range doc["tables"].([]any) {
		if tb := x.(map[string]any); tb["name"] == "tokens" {
			entry = tb
		}
	}
	// The table's one chunk (format 2; the admin token is its only row)
	// or its file (format 1).
	var chunk map[string]any
	rel, _ := entry["file"].(string)
	if chunks, _ := entry["chunks"].([]any); len(chunks) == 1 {
		chunk = chunks[0].(map[string]any)
		rel = chunk["object"].(string)
	}
	file := filepath.Join(repoDir, rel)
	kb, err := os.ReadFile(identityFile)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(kb))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	ar, err := age.Decrypt(f, ids...)
	if err != nil {
		t.Fatal(err)
	}
	zr, _ := zstd.NewReader(ar)
	plain, err := io.ReadAll(zr)
	zr.Close()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("cvt_forgedadmintoken"))
	plain = append(plain, fmt.Sprintf(`{"id":"01900000-0000-7000-8000-00000000f0f0","name":"attacker","role":"admin","hash":"%s","created_at":1740819600000000,"revoked_at":null}`+"\n", hex.EncodeToString(sum[:]))...)
	rcpt, err := age.ParseX25519Recipient(doc["recipients"].([]any)[0].(string))
	if err != nil {
		t.Fatal(err)
	}
	var enc bytes.Buffer
	aw, _ := age.Encrypt(&enc, rcpt)
	zw, _ := zstd.NewWriter(aw, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	_, _ = zw.Write(plain)
	_ = zw.Close()
	_ = aw.Close()
	ps, es := sha256.Sum256(plain), sha256.Sum256(enc.Bytes())
	if chunk != nil {
		// Chunks are shared by every backup whose table did not change:
		// the forgery is a new object the patched manifest points to.
		h := hex.EncodeToString(es[:])
		chunk["object"] = "data/" + h[:2] + "/" + h
		file = filepath.Join(repoDir, chunk["object"].(string))
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(file, enc.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	entry["rows"] = entry["rows"].(float64) + 1
	entry["size"], entry["sha256"] = enc.Len(), hex.EncodeToString(es[:])
	entry["plain_size"], entry["plain_sha256"] = len(plain), hex.EncodeToString(ps[:])
	if chunk != nil {
		chunk["rows"], chunk["size"] = entry["rows"], enc.Len()
		chunk["plain_size"], chunk["plain_sha256"] = len(plain), hex.EncodeToString(ps[:])
	}
	out, _ := json.MarshalIndent(doc, "", "  ")
	if err := os.WriteFile(mpath, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A backup whose tokens table an attacker replaced (re-encrypted to the
// manifest's recipient, digests patched) is refused by verify --read-data,
// restore --to (which creates nothing) and restore --case, all with exit 4.
// A backup without its signature is refused naming the reason, and
// accepted with --allow-unsigned. On a new host, the lost instance's master
// key (as the recovery steps say) authenticates its backups; no master key
// is exit 12, another instance's is exit 4.
func TestBackupForgeryRefusedCLI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	p, tok := startAdmin(t, dir)
	s := seed(t, p.api(), tok, "Forgery", 8<<10)
	var ids []string
	for i := 0; i < 3; i++ {
		if i == 2 {
			// Backup ids order by second; a restore needs every later
			// backup (for its tombstones), so the intact one comes last.
			time.Sleep(time.Second)
		}
		ids = append(ids, result(t, cvOK(t, nil, "backup", "run", "--json", "--data-dir", dir))["id"].(string))
	}
	stop(t, p)
	forged, unsigned, intact := ids[0], ids[1], ids[2]
	repoDir := filepath.Join(dir, "backups")
	forgeTokens(t, repoDir, filepath.Join(dir, "backup.key"), forged)

	for _, args := range [][]string{
		{"backup", "verify", forged, "--read-data"},
		{"backup", "verify", forged},
		{"backup", "restore", forged, "--case", s.caseID},
	} {
		_, errOut, code := cv(t, nil, append(args, "--data-dir", dir)...)
		if code != exitDamaged || !strings.Contains(errOut, "signature does not verify") {
			t.Fatalf("%v on a forged backup: exit %d, want %d naming the signature: %s", args, code, exitDamaged, errOut)
		}
	}
	target := filepath.Join(t.TempDir(), "restored")
	out := cvCode(t, exitDamaged, nil, "backup", "restore", forged, "--to", target, "--json", "--data-dir", dir)
	if !strings.Contains(out, `"exit_code":4`) {
		t.Fatalf("restore --json of a forged backup: %s", out)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Fatalf("a refused restore created its target: %v", err)
	}
	list := cvCode(t, exitDamaged, nil, "backup", "list", "--json", "--data-dir", dir)
	if !strings.Contains(list, forged) || !strings.Contains(list, "signature does not verify") {
		t.Fatalf("list does not report the forged backup: %s", list)
	}

	if err := os.Remove(filepath.Join(repoDir, "snapshots", unsigned, "manifest.sig")); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := cv(t, nil, "backup", "verify", unsigned, "--read-data", "--data-dir", dir)
	if code != exitDamaged || !strings.Contains(errOut, "not signed") || !strings.Contains(errOut, "--allow-unsigned") {
		t.Fatalf("verify of an unsigned backup: exit %d: %s", code, errOut)
	}
	if out := cvOK(t, nil, "backup", "verify", unsigned, "--read-data", "--allow-unsigned", "--data-dir", dir); !strings.Contains(out, "WARNING") {
		t.Fatalf("verify --allow-unsigned does not warn: %s", out)
	}
	// --allow-unsigned never accepts a bad signature.
	cvCode(t, exitDamaged, nil, "backup", "verify", forged, "--allow-unsigned", "--data-dir", dir)

	// A new host: the repository, the backup key and the master key.
	mk, err := os.ReadFile(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	fresh := []string{"--data-dir", t.TempDir(), "--backup-dir", repoDir, "--backup-identity-file", filepath.Join(dir, "backup.key")}
	_, errOut, code = cv(t, nil, append([]string{"backup", "verify", intact, "--read-data"}, fresh...)...)
	if code != exitKey || !strings.Contains(errOut, "CASEVAULT_MASTER_KEY") {
		t.Fatalf("verify without the master key: exit %d, want %d: %s", code, exitKey, errOut)
	}
	cvOK(t, []string{"CASEVAULT_MASTER_KEY=" + strings.TrimSpace(string(mk))}, append([]string{"backup", "verify", intact, "--read-data"}, fresh...)...)
	_, errOut, code = cv(t, []string{"CASEVAULT_MASTER_KEY=" + strings.Repeat("ab", 32)}, append([]string{"backup", "verify", intact}, fresh...)...)
	if code != exitDamaged || !strings.Contains(errOut, "another key") {
		t.Fatalf("verify with another master key: exit %d, want %d: %s", code, exitDamaged, errOut)
	}
	// The intact backup still restores.
	cvOK(t, []string{"CASEVAULT_MASTER_KEY=" + strings.TrimSpace(string(mk))}, append([]string{"backup", "restore", intact, "--to", target, "--no-live"}, fresh...)...)
}
