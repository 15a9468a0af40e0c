package web

import (
	"context"
	"database/sql"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
)

func (w *Console) adminRoutes() []pageRoute {
	return []pageRoute{
		{method: "GET", path: "/admin/users", perm: auth.Admin, h: w.usersPage},
		{method: "POST", path: "/admin/users", perm: auth.Admin, h: w.addUser},
		{method: "POST", path: "/admin/users/:id", perm: auth.Admin, h: w.changeUser},
		{method: "GET", path: "/admin/tokens", perm: auth.Admin, read: "token.list", target: "token", h: w.tokensPage},
		{method: "POST", path: "/admin/tokens", perm: auth.Admin, h: w.createToken},
		{method: "POST", path: "/admin/tokens/:id/revoke", perm: auth.Admin, h: w.revokeToken},
	}
}

// userChange is the audit event of a change to a console user (the CLI's
// `casevault user` records the same actions).
func userChange(a cases.Actor, action, userID string, detail map[string]any) cases.Change {
	return cases.Change{Actor: a, Action: action, TargetType: "user", TargetID: userID, Detail: detail}
}

func (w *Console) auditTx(ch cases.Change) func(ctx context.Context, tx *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		if w.d.UserAudit == nil {
			return nil
		}
		return w.d.UserAudit(ctx, tx, ch)
	}
}

func (w *Console) usersPage(r *req) error {
	users, err := w.d.Users.List(r.c.UserContext())
	if err != nil {
		return err
	}
	return r.render("users", r.L.T("users.title"), map[string]any{"Users": users, "Roles": auth.Roles})
}

func (w *Console) addUser(r *req) error {
	c := r.c
	role, err := auth.ParseRole(c.FormValue("role"))
	if err != nil {
		return cases.Invalid("role", err.Error())
	}
	_, err = w.d.Users.Create(c.UserContext(), strings.TrimSpace(c.FormValue("name")), role, c.FormValue("password"),
		func(ctx context.Context, tx *sql.Tx, u auth.User) error {
			return w.auditTx(userChange(r.actor, "user.create", u.ID, map[string]any{"name": u.Name, "role": string(u.Role)}))(ctx, tx)
		})
	if err != nil {
		return err
	}
	return r.redirect("/admin/users", "user_added")
}

// changeUser resets a password, changes a role, disables or enables a
// user, or signs them out everywhere; all but enabling end their sessions.
func (w *Console) changeUser(r *req) error {
	c := r.c
	ctx := c.UserContext()
	id := c.Params("id")
	u, err := w.d.Users.Get(ctx, id)
	if err != nil {
		return err
	}
	op := c.FormValue("op")
	endSessions := true
	switch op {
	case "password":
		err = w.d.Users.SetPassword(ctx, u.ID, c.FormValue("password"), w.auditTx(userChange(r.actor, "user.password", u.ID, nil)))
	case "role":
		var role auth.Role
		if role, err = auth.ParseRole(c.FormValue("role")); err != nil {
			return cases.Invalid("role", err.Error())
		}
		err = w.d.Users.SetRole(ctx, u.ID, role, w.auditTx(userChange(r.actor, "user.role", u.ID, map[string]any{"from": string(u.Role), "to": string(role)})))
	case "disable", "enable":
		if u.ID == r.ses.User.ID && op == "disable" {
			return &statusError{fiber.StatusConflict, r.L.T("users.self")}
		}
		endSessions = op == "disable"
		err = w.d.Users.SetDisabled(ctx, u.ID, op == "disable", w.auditTx(userChange(r.actor, "user."+op, u.ID, nil)))
	case "signout":
		err = r.audit("user.signout", "user", u.ID, nil)
	default:
		return cases.Invalid("op", "must be password, role, disable, enable or signout")
	}
	if err != nil {
		return err
	}
	if endSessions {
		if _, err := w.d.Sessions.EndAll(ctx, u.ID); err != nil {
			return err
		}
	}
	return r.redirect("/admin/users", "user_changed")
}

func (w *Console) tokensPage(r *req) error {
	toks, err := w.d.API.Tokens.List(r.c.UserContext())
	if err != nil {
		return err
	}
	r.readDetail = map[string]any{"count": len(toks)}
	return r.render("tokens", r.L.T("tokens.title"), map[string]any{"Tokens": toks, "Roles": auth.Roles})
}

// createToken makes an API token and shows its secret once, as POST
// /api/v1/tokens does.
func (w *Console) createToken(r *req) error {
	c := r.c
	role, err := auth.ParseRole(c.FormValue("role"))
	if err != nil {
		return cases.Invalid("role", err.Error())
	}
	tok, secret, err := w.d.API.Tokens.Create(c.UserContext(), c.FormValue("name"), role, func(ctx context.Context, tx *sql.Tx, tok auth.Token) error {
		if w.d.API.AuditTx == nil {
			return nil
		}
		return w.d.API.AuditTx(ctx, tx, cases.Change{Actor: r.actor, Action: "token.create", TargetType: "token", TargetID: tok.ID,
			Detail: map[string]any{"name": tok.Name, "role": string(tok.Role)}})
	})
	if err != nil {
		return err
	}
	toks, err := w.d.API.Tokens.List(c.UserContext())
	if err != nil {
		return err
	}
	return r.render("tokens", r.L.T("tokens.title"), map[string]any{"Tokens": toks, "Roles": auth.Roles, "New": tok, "Secret": secret})
}

func (w *Console) revokeToken(r *req) error {
	id := r.c.Params("id")
	err := w.d.API.Tokens.Revoke(r.c.UserContext(), id, func(ctx context.Context, tx *sql.Tx) error {
		if w.d.API.AuditTx == nil {
			return nil
		}
		return w.d.API.AuditTx(ctx, tx, cases.Change{Actor: r.actor, Action: "token.revoke", TargetType: "token", TargetID: id})
	})
	if err != nil {
		return err
	}
	return r.redirect("/admin/tokens", "token_revoked")
}
