package api

import (
	"context"
	"database/sql"

	"github.com/gofiber/fiber/v2"

	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
)

type tokenInput struct {
	Name *string `json:"name"`
	Role *string `json:"role"`
}

func (s *Server) createToken(c *fiber.Ctx) error {
	var in tokenInput
	if err := s.decodeJSON(c, &in); err != nil {
		return err
	}

	var v cases.ValidationError
	if in.Name == nil {
		v.Fields = append(v.Fields, cases.FieldError{Field: "name", Message: "is required"})
	}

	if in.Role == nil {
		v.Fields = append(v.Fields, cases.FieldError{Field: "role", Message: "is required"})
	}

	if len(v.Fields) > 0 {
		return &v
	}

	role, err := auth.ParseRole(*in.Role)
	if err != nil {
		return cases.Invalid("role", err.Error())
	}

	a := actor(c)
	tok, secret, err := s.d.Tokens.Create(c.UserContext(), *in.Name, role, func(ctx context.Context, tx *sql.Tx, tok auth.Token) error {
		if s.d.AuditTx == nil {
			return nil
		}
		return s.d.AuditTx(ctx, tx, cases.Change{Actor: a, Action: "token.create", TargetType: "token", TargetID: tok.ID,
			Detail: map[string]any{"name": tok.Name, "role": string(tok.Role)}})
	})
	if err != nil {
		return err
	}

	return c.Status(fiber.StatusCreated).JSON(createdToken{ID: tok.ID, Name: tok.Name, Role: tok.Role, Token: secret, CreatedAt: tok.CreatedAt})
}

func (s *Server) listTokens(c *fiber.Ctx) error {
	toks, err := s.d.Tokens.List(c.UserContext())
	if err != nil {
		return err
	}
	c.Locals(targetKey, "")
	c.Locals(detailKey, map[string]any{"count": len(toks)})
	return list(c, toks, "")
}

func (s *Server) revokeToken(c *fiber.Ctx) error {
	a := actor(c)
	id := c.Params("id")
	err := s.d.Tokens.Revoke(c.UserContext(), id, func(ctx context.Context, tx *sql.Tx) error {
		if s.d.AuditTx == nil {
			return nil
		}
		return s.d.AuditTx(ctx, tx, cases.Change{Actor: a, Action: "token.revoke", TargetType: "token", TargetID: id})
	})
	if err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
