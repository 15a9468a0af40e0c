package web

import (
	"time"

	"github.com/casevault/casevault/auth"
)

// OpsDeps are what the legal, operator and admin pages need beyond the
// API's services (api.Deps): both come from cmd/casevault's wiring.
type OpsDeps struct {
	// Settings lists the settings in force, secrets without their values
	// (nil: no settings page).
	Settings func() []Setting
	// RestoreCase restores one case from a backup (nil: the restore form
	// says it is not available).
	RestoreCase CaseRestorer
}

// opsState is the ops pages' state in the Console: the live progress of
// the backups it started.
type opsState struct {
	progress *runProgress
}

func newOpsState() opsState { return opsState{progress: newRunProgress()} }

// opsRoutes are the pages of the legal, operator and admin areas added for
// issue 18 (holds preview, release, reinstate, exports, explanation,
// dispositions; backup progress, forget preview, case restore; schedule
// editor, settings), in one block; reads record the API's actions.
func (w *Console) opsRoutes() []pageRoute {
	return []pageRoute{
		{method: "POST", path: "/holds/preview", perm: auth.LegalWork, h: w.previewHold},
		{method: "GET", path: "/holds/:id/release", perm: auth.LegalWork, h: w.releasePage},
		{method: "POST", path: "/holds/:id/reinstate", perm: auth.LegalWork, h: w.reinstateHold},
		{method: "POST", path: "/holds/:id/export", perm: auth.LegalWork, h: w.exportHold},
		{method: "GET", path: "/exports/:id", perm: auth.LegalWork, h: w.exportPage},
		{method: "GET", path: "/exports/:id/download", perm: auth.LegalWork, read: "export.download", target: "export", h: w.downloadExport},
		{method: "GET", path: "/retention/explain", perm: auth.LegalWork, h: w.explainPage},
		{method: "GET", path: "/dispositions", perm: auth.LegalWork, read: "disposition.list", target: "disposition", h: w.dispositionsPage},

		{method: "GET", path: "/backups/forget", perm: auth.BackupWork, h: w.forgetPreview},
		{method: "GET", path: "/backups/runs/:id", perm: auth.BackupWork, h: w.backupRunPage},
		{method: "GET", path: "/backups/:id/restore", perm: auth.BackupWork, h: w.restoreCasePage},
		{method: "POST", path: "/backups/:id/restore", perm: auth.BackupWork, h: w.restoreCase},

		{method: "GET", path: "/admin/retention", perm: auth.Admin, h: w.retentionPage},
		{method: "POST", path: "/admin/retention/preview", perm: auth.Admin, h: w.previewSchedule},
		{method: "POST", path: "/admin/retention", perm: auth.Admin, h: w.saveSchedule},
		{method: "GET", path: "/admin/settings", perm: auth.Admin, h: w.settingsPage},
	}
}

// progressKeep is how long the live progress of an ended run is kept.
const progressKeep = time.Hour
