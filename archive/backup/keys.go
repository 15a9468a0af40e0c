package backup

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
)

// Keys are the backup key pair: recipients encrypt (the server needs only
// these), the identity decrypts (restore and verify --read-data). It is a
// standard age X25519 key, so `age -d -i backup.key` opens any file.
type Keys struct {
	Recipients []age.Recipient
	// Identity is nil when only public keys are configured.
	Identity age.Identity
	// Public are the recipients as text, recorded in manifests.
	Public []string
}

// KeyConfig says where the keys come from.
type KeyConfig struct {
	// Recipients: age public keys ("age1..."), comma or space separated.
	Recipients string
	// IdentityFile: an age identity file ("AGE-SECRET-KEY-1...").
	IdentityFile string
	// DefaultIdentityFile is generated (mode 0600) when neither of the
	// above is set, so backups work out of the box.
	DefaultIdentityFile string
	// MasterKeyHex is refused as a backup key: the two must differ.
	MasterKeyHex string
}

// LoadKeys resolves the key configuration; create allows generating the
// default identity (backup runs), restores and verifies never create one.
func LoadKeys(cfg KeyConfig, create bool) (Keys, error) {
	var k Keys
	idFile := cfg.IdentityFile
	if idFile == "" && cfg.Recipients == "" {
		idFile = cfg.DefaultIdentityFile
		if _, err := os.Stat(idFile); errors.Is(err, os.ErrNotExist) && create {
			if err := generateIdentity(idFile); err != nil {
				return Keys{}, err
			}
		}
	}

	if idFile != "" {
		b, err := os.ReadFile(idFile)
		switch {
		case errors.Is(err, os.ErrNotExist) && cfg.IdentityFile == "":
			// No key yet and none may be made: public-only use fails later.
		case errors.Is(err, os.ErrNotExist):
			return Keys{}, fmt.Errorf("%w: %w", ErrNoKey, err)
		case err != nil:
			return Keys{}, fmt.Errorf("backup identity: %w", err)
		default:
			if cfg.MasterKeyHex != "" && bytes.Contains(bytes.ToLower(b), []byte(strings.ToLower(cfg.MasterKeyHex))) {
				return Keys{}, errors.New("backup identity file contains the master key: the backup key must be separate")
			}
			ids, err := age.ParseIdentities(bytes.NewReader(b))
			if err != nil {
				return Keys{}, fmt.Errorf("backup identity %s: %w", idFile, err)
			}
			for _, id := range ids {
				x, ok := id.(*age.X25519Identity)
				if !ok {
					continue
				}
				if k.Identity == nil {
					k.Identity = x
				}
				if cfg.Recipients == "" {
					k.Recipients = append(k.Recipients, x.Recipient())
					k.Public = append(k.Public, x.Recipient().String())
				}
			}
			if k.Identity == nil {
				return Keys{}, fmt.Errorf("backup identity %s: no X25519 identity in it", idFile)
			}
		}
	}

	for _, s := range strings.FieldsFunc(cfg.Recipients, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
		r, err := age.ParseX25519Recipient(s)
		if err != nil {
			return Keys{}, fmt.Errorf("backup recipient %q: %w", s, err)
		}
		k.Recipients = append(k.Recipients, r)
		k.Public = append(k.Public, r.String())
	}

	return k, nil
}

func generateIdentity(path string) error {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return fmt.Errorf("backup identity: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("backup identity: %w", err)
	}
	body := fmt.Sprintf("# casevault backup key (age X25519). Keep a copy OFF this machine:\n# without it no backup can be restored.\n# public key: %s\n%s\n", id.Recipient(), id)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("backup identity: %w", err)
	}
	if _, err := f.WriteString(body); err != nil {
		f.Close()
		return fmt.Errorf("backup identity: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("backup identity: %w", err)
	}
	return f.Close()
}
