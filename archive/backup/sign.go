package backup

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/casevault/casevault/archive"
)

// Why a signature, and why this key: age only proves that a file was
// encrypted to the backup recipient, whose public key is in every manifest.
// Anyone who can write to the repository can therefore encrypt a table of
// their own, patch the digests in the manifest and have it restored. The
// manifest (and through its digests every file) is signed with an Ed25519
// key the repository never holds: one derived from the master key. The
// master key is on every server (it wraps the customer keys, so backups can
// run with only the public backup key) and the operator must keep it for
// any restore anyway (restored attachments are unreadable without it), so
// authenticating backups adds no key to keep.

// Authentication errors; both wrap ErrDamaged (exit code 4).
var (
	// ErrUnsigned: a manifest without a signature (written before
	// casevault signed backups, or the signature was removed).
	ErrUnsigned = errors.New("manifest is not signed")
	// ErrBadSignature: the manifest or its signature was altered, or it
	// was signed by another key (another instance's master key).
	ErrBadSignature = errors.New("manifest signature does not verify")
	// ErrNoSigningKey: the master key is needed to sign or authenticate
	// manifests and none was given.
	ErrNoSigningKey = errors.New("master key needed to sign or authenticate backup manifests")
)

// signatureName is the detached signature beside manifest.json. It is
// written before the manifest (the commit point), so every listed backup
// written by this version has one.
const signatureName = "manifest.sig"

// sigAlg names the signature scheme in signature files.
const sigAlg = "ed25519"

// sigContext separates manifest signatures from anything else the key
// could ever sign.
const sigContext = "casevault-backup/1 manifest\n"

// hkdfInfo names the derived key's purpose: the same master key yields
// unrelated keys for other purposes.
const hkdfInfo = "casevault backup manifest signing key v1"

// SigningKey signs and authenticates backup manifests.
type SigningKey struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
}

// DeriveSigningKey derives the manifest signing key from the instance's
// master key (HKDF-SHA256, then Ed25519 from the 32-byte seed).
func DeriveSigningKey(master []byte) (*SigningKey, error) {
	if len(master) != archive.MasterKeySize {
		return nil, fmt.Errorf("backup signing key: master key must be %d bytes, got %d", archive.MasterKeySize, len(master))
	}
	seed, err := hkdf.Key(sha256.New, master, nil, hkdfInfo, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("backup signing key: %w", err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	return &SigningKey{priv: priv, pub: priv.Public().(ed25519.PublicKey)}, nil
}

// PublicKey is the verifying key as recorded in signature files (base64).
func (k *SigningKey) PublicKey() string { return base64.StdEncoding.EncodeToString(k.pub) }

// signature is the content of manifest.sig. Key is informational (it lets
// the error say "signed by another key"): trust comes from the key the
// verifier derives itself, never from this field.
type signature struct {
	Alg       string `json:"alg"`
	Key       string `json:"key"`
	Signature string `json:"signature"`
}

func (k *SigningKey) sign(manifest []byte) ([]byte, error) {
	msg := append([]byte(sigContext), manifest...)
	return json.Marshal(signature{Alg: sigAlg, Key: k.PublicKey(), Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(k.priv, msg))})
}

// verify checks raw signature-file bytes against the manifest's bytes.
func (k *SigningKey) verify(manifest, sigFile []byte) error {
	var s signature
	if err := json.Unmarshal(sigFile, &s); err != nil {
		return fmt.Errorf("%w: unreadable signature file: %w", ErrBadSignature, err)
	}
	if s.Alg != sigAlg {
		return fmt.Errorf("%w: unknown algorithm %q", ErrBadSignature, s.Alg)
	}
	sig, err := base64.StdEncoding.DecodeString(s.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: malformed signature", ErrBadSignature)
	}
	msg := append([]byte(sigContext), manifest...)
	if ed25519.Verify(k.pub, msg, sig) {
		return nil
	}
	if s.Key != k.PublicKey() {
		return fmt.Errorf("%w: signed by another key (%s), not this master key's (%s): another instance's backup, or forged", ErrBadSignature, s.Key, k.PublicKey())
	}
	return fmt.Errorf("%w: the manifest or its signature was altered after it was written", ErrBadSignature)
}

// readAll reads a small repository object whole; ErrNotFound passes through.
func (r *Repo) readAll(ctx context.Context, key string, limit int64) ([]byte, error) {
	rc, err := r.st.Get(ctx, r.key(key))
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", key, limit)
	}
	return b, nil
}

// putSigned writes the manifest's signature, then the manifest: once the
// manifest exists (the backup is listed) its signature does too.
func (r *Repo) putSigned(ctx context.Context, id string, m Manifest) error {
	if r.signer == nil {
		return ErrNoSigningKey
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	sig, err := r.signer.sign(b)
	if err != nil {
		return err
	}
	for _, o := range []struct {
		key  string
		body []byte
	}{{snapshotsDir + id + "/" + signatureName, sig}, {snapshotsDir + id + "/" + manifestName, b}} {
		if err := r.st.Put(ctx, r.key(o.key), bytes.NewReader(o.body), int64(len(o.body))); err != nil {
			return fmt.Errorf("write %s: %w", o.key, err)
		}
	}
	return nil
}
