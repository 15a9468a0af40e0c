// Package backup takes, checks, prunes and restores backups of one casevault
// instance. The format is docs/BACKUP-FORMAT.md; this package is the code
// that keeps it.
//
// A backup is one snapshot in a repository (a local directory or an S3
// bucket, opened with OpenRepo): every table dumped from one read
// transaction as canonical NDJSON, zstd-compressed and age-encrypted to the
// backup recipients; a verbatim copy of each attachment blob no earlier
// backup holds (content-addressed; the attachment store's bytes, already
// encrypted under the customer's data key, so no age layer is added); and a manifest,
// signed and written last, that lists them all with their digests. Until
// the manifest exists the snapshot does not count.
//
// The flow:
//
//   - run: Service.Backup (or Start, in the background) takes the one-row
//     run lease, so one run goes on across replicas, records the run in
//     backup_runs, dumps the tables, copies the new blobs and writes the
//     manifest. RecoverRuns marks the runs a dead process left "running".
//   - verify: Repo.Verify checks a backup's signature and that every file
//     it lists is there with its size; with readData it reads every byte
//     back against the signed digests (and decrypts, given the identity).
//   - restore: Repo.Restore puts a whole backup into an empty database
//     (blobs first, then every table in one transaction, checked against
//     its digest; SQLite loads in rollback-journal mode, restore.go's
//     sqliteLoad) and replays the tombstones of newer backups and the live
//     database; Repo.RestoreCase puts one case's missing rows back into a
//     running instance, never what a tombstone says was destroyed.
//   - forget: Service.Forget removes the backups a KeepPolicy does not keep
//     (Plan decides), then every object no remaining backup references.
//
// Trust: a manifest is signed by a key derived from the master key, and
// every manifest read is authenticated first, so whoever can write to the
// repository cannot substitute a file or plant tombstones (age alone would
// let anyone encrypt to the public recipient); they can only delete or roll
// back, which verify and restore report. Confidentiality: tables and the
// key escrow are age files to the backup recipients; attachment copies are
// ciphertext under the customers' data keys, which are in the repository
// only in the key escrow (wrapped by the master key, then age-encrypted),
// so reading either takes the backup identity and the master key, and an
// erasure (key destroyed, escrow entry deleted) leaves the customer's
// copies in older backups unreadable. The "Trust model" section of
// docs/BACKUP-FORMAT.md lists who holds which key and what each can do.
package backup
