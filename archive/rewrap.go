package archive

import (
	"bytes"
	"fmt"
)

// RewrapDataKey returns a customer's data key, wrapped under master key
// from, wrapped under master key to: a case restored from another
// instance's backup keeps readable files. from == nil (or equal to to)
// only proves that the key unwraps under to. A key that does not unwrap is
// ErrWrongMasterKey: stored anyway, every read of the customer's files
// would fail.
func RewrapDataKey(customerID, wrapped string, from, to []byte) (string, error) {
	dst, err := NewKeyring(nil, to, KeyringOptions{CacheSize: 1})
	if err != nil {
		return "", err
	}
	if from == nil || bytes.Equal(from, to) {
		if _, err := dst.unwrap(customerID, wrapped); err != nil {
			return "", fmt.Errorf("%w: the backup's data key of customer %s does not unwrap under this instance's master key (give the backup's instance key: --source-master-key-file)", ErrWrongMasterKey, customerID)
		}
		return wrapped, nil
	}
	src, err := NewKeyring(nil, from, KeyringOptions{CacheSize: 1})
	if err != nil {
		return "", err
	}
	key, err := src.unwrap(customerID, wrapped)
	if err != nil {
		return "", fmt.Errorf("%w: the backup's data key of customer %s does not unwrap under the source master key either", ErrWrongMasterKey, customerID)
	}
	return dst.wrap(customerID, key)
}

// ReadMasterKeyFile reads a master key file (hex, mode 0600), such as the
// lost instance's master.key given to a restore.
func ReadMasterKeyFile(path string) ([]byte, error) { return readMasterFile(path) }
