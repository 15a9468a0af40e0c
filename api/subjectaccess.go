package api

import (
	"bufio"
	"context"
	"io"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
)

// Data-subject requests (issue 15 §2–3): consent withdrawal that reaches
// the data already stored, and the access export.

// ConsentApplier applies a customer's consents to what is stored
// (retention.Consents).
type ConsentApplier interface {
	Apply(ctx context.Context, customerID string, actor cases.Actor) (retention.ConsentReport, error)
}

// CustomerExporter writes the ZIP of everything stored about a customer
// (export.SubjectAccess). Check answers cases.ErrNotFound for an unknown
// customer before anything is written.
type CustomerExporter interface {
	Check(ctx context.Context, customerID string) error
	Write(ctx context.Context, w io.Writer, customerID string) error
}

// withdraws reports whether a consents patch withdraws any consent.
func withdraws(p *cases.ConsentsPatch) bool {
	if p == nil {
		return false
	}
	for _, v := range []*bool{p.Location, p.Marketing, p.Personalization} {
		if v != nil && !*v {
			return true
		}
	}
	return false
}

// customerWithWithdrawal is a customer as updated, with what withdrawing
// consents redacted.
type customerWithWithdrawal struct {
	cases.Customer
	Withdrawal *retention.ConsentReport `json:"consent_withdrawal,omitempty"`
}

// applyConsents redacts what the customer's consents, as the patch left
// them, forbid. The consents committed first: if this fails the client
// gets the error and repeats the PATCH, which redacts what is left.
func (s *Server) applyConsents(c *fiber.Ctx, cust cases.Customer, p *cases.ConsentsPatch) (customerWithWithdrawal, error) {
	out := customerWithWithdrawal{Customer: cust}
	if s.d.Privacy == nil || s.d.Privacy.Consents == nil || !withdraws(p) {
		return out, nil
	}
	rep, err := s.d.Privacy.Consents.Apply(c.UserContext(), cust.ID, actor(c))
	if err != nil {
		return out, err
	}
	out.Withdrawal = &rep
	return out, nil
}

// exportCustomer streams the customer's access export. The read is
// audited (customer.export) by the guard before the body is sent.
func (s *Server) exportCustomer(c *fiber.Ctx) error {
	// The id is used by the stream writer after the handler returned, when
	// Fiber's zero-copy param may already hold the next request's bytes.
	id := strings.Clone(c.Params("id"))
	if err := s.d.Privacy.Exporter.Check(c.UserContext(), id); err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "application/zip")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="customer-`+id+`.zip"`)
	ctx := context.WithoutCancel(c.UserContext())
	exp := s.d.Privacy.Exporter
	log := s.log
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		if err := exp.Write(ctx, w, id); err != nil {
			// The status went out; a broken ZIP (no central directory)
			// is what the client sees.
			log.Error("customer export failed", "customer", id, "err", err)
		}
	})
	return nil
}
