package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/export"
)

// ExportService runs e-discovery exports (package export).
type ExportService interface {
	Start(ctx context.Context, in export.Input, actor cases.Actor) (export.Export, <-chan struct{}, error)
	Get(ctx context.Context, id string) (export.Export, error)
	OpenRange(ctx context.Context, e export.Export, off, n int64) (io.ReadCloser, error)
	Delete(ctx context.Context, id string, actor cases.Actor) error
}

func (s *Server) addExportRoutes() {
	if s.d.Exports == nil {
		return
	}
	const v1 = "/api/v1"
	s.add(route{method: "POST", path: v1 + "/exports", perm: auth.LegalWork, summary: "Start an e-discovery export of a legal hold or an ad-hoc scope (audited)", h: s.startExport, ok: 202, request: export.Input{}, reply: export.Export{}})
	s.add(route{method: "GET", path: v1 + "/exports/:id", perm: auth.LegalWork, summary: "An export's status and progress", h: s.getExport, ok: 200, reply: export.Export{}})
	s.add(route{method: "GET", path: v1 + "/exports/:id/download", perm: auth.LegalWork, read: "export.download", target: "export", summary: "Download an export package (ZIP; Range supported; audited)", h: s.downloadExport, ok: 200, media: "application/zip", alt: map[int]any{206: nil}})
	s.add(route{method: "DELETE", path: v1 + "/exports/:id", perm: auth.LegalWork, summary: "Delete an export package (audited; the record stays)", h: s.deleteExport, ok: 204})
}

func (s *Server) startExport(c *fiber.Ctx) error {
	var in export.Input
	if err := s.decodeJSON(c, &in); err != nil {
		return err
	}
	// The run outlives the request but not the server (Shutdown cancels
	// it, and the export is then failed, never complete).
	ctx, cancel := s.runs.detach(c.UserContext())
	e, done, err := s.d.Exports.Start(ctx, in, actor(c))
	if err != nil {
		cancel()
		return err
	}
	go func() {
		<-done
		cancel()
	}()
	c.Location("/api/v1/exports/" + e.ID)
	return c.Status(fiber.StatusAccepted).JSON(e)
}

func (s *Server) getExport(c *fiber.Ctx) error {
	e, err := s.d.Exports.Get(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(e)
}

func (s *Server) deleteExport(c *fiber.Ctx) error {
	if err := s.d.Exports.Delete(c.UserContext(), c.Params("id"), actor(c)); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// downloadExport streams the package decrypted, whole or one byte range;
// the read audit records the download with the range.
func (s *Server) downloadExport(c *fiber.Ctx) error {
	e, err := s.d.Exports.Get(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	if e.Status != export.StatusComplete {
		return errStatus(fiber.StatusConflict, "export %s is %s, not complete", e.ID, e.Status)
	}

	off, n, partial, unsat := parseRange(c.Get(fiber.HeaderRange), e.Size)
	if unsat {
		c.Set(fiber.HeaderContentRange, fmt.Sprintf("bytes */%d", e.Size))
		return errStatus(fiber.StatusRequestedRangeNotSatisfiable, "range outside the %d-byte package", e.Size)
	}
	if !partial {
		off, n = 0, e.Size
	}

	rc, err := s.d.Exports.OpenRange(c.UserContext(), e, off, n)
	if err != nil {
		return err
	}
	// As for attachments: authenticate the first package before a status
	// goes out.
	head := make([]byte, min(n, firstPackage))
	if _, err := io.ReadFull(rc, head); err != nil {
		rc.Close()
		return fmt.Errorf("export %s: %w", e.ID, err)
	}

	c.Set(fiber.HeaderContentType, "application/zip")
	c.Set(fiber.HeaderContentDisposition, contentDisposition("export-"+e.ID+".zip"))
	c.Set(fiber.HeaderAcceptRanges, "bytes")
	c.Set(fiber.HeaderETag, `"`+e.SHA256+`"`)
	c.Locals(detailKey, map[string]any{"offset": off, "length": n, "size": e.Size, "sha256": e.SHA256})
	status := fiber.StatusOK
	if partial {
		status = fiber.StatusPartialContent
		c.Set(fiber.HeaderContentRange, fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, e.Size))
	}
	c.Status(status)
	rid, id := requestID(c), strings.Clone(e.ID)
	c.Context().SetBodyStream(&chunkedWriterTo{rc: readCloser{io.MultiReader(bytes.NewReader(head), rc), rc}, onError: func(err error, sent int64) {
		s.log.Error("export download cut short", "request_id", rid, "export", id, "bytes_sent", sent, "err", err)
	}}, int(n))
	return nil
}
