package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/web"
)

// consoleSettings lists the settings in force for the console's settings
// page, as `casevault config` prints them: a secret's value never leaves
// here (only whether it is set). The list is made once (the configuration
// does not change while serving); each call gets its own copy.
func consoleSettings(cfg *config) func() []web.Setting {
	list := make([]web.Setting, 0, len(options()))
	for _, o := range options() {
		v := settingText(o.field(cfg))
		s := web.Setting{Name: o.name, Env: o.env(), Source: cfg.source[o.name], Secret: o.secret, Set: v != ""}
		if s.Source == "" {
			s.Source = "default"
		}
		if !o.secret {
			s.Value = v
		}
		list = append(list, s)
	}
	return func() []web.Setting { return slices.Clone(list) }
}

// settingText is a typed config field as text (what its flag would print).
func settingText(field any) string {
	switch p := field.(type) {
	case *string:
		return *p
	case *bool:
		return strconv.FormatBool(*p)
	case *int:
		return strconv.Itoa(*p)
	case *time.Duration:
		return p.String()
	case pflag.Value:
		return p.String()
	}
	return fmt.Sprint(field)
}

// consoleCaseRestorer is the console's single-case restore: the same call
// as `casevault backup restore --case` on this instance's database, blobs
// and keys (a backup of this instance: its data keys must unwrap under
// this master key), refusing held data, audited as the console user.
func consoleCaseRestorer(db *sqldb.DB, svc *backup.Service, blobs archive.Blobs, keys backup.Keys, master []byte,
	heldBy func(ctx context.Context, caseID, customerID string) ([]string, error), hook cases.TxHook) web.CaseRestorer {
	if keys.Identity == nil {
		return nil // only public keys here: nothing can be decrypted
	}
	return func(ctx context.Context, backupID, caseID string, overwrite bool, actor cases.Actor) (backup.CaseRestoreReport, error) {
		return svc.Repo().RestoreCase(ctx, backupID, caseID, backup.CaseRestoreOptions{DB: db, Blobs: blobs, Identity: keys.Identity,
			Overwrite: overwrite, HeldBy: heldBy, Actor: actor, OnChange: hook,
			Rewrap: func(customerID, wrapped string) (string, error) {
				return archive.RewrapDataKey(customerID, wrapped, nil, master)
			}})
	}
}
