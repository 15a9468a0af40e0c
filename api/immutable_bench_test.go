package api

import (
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// BenchmarkImmutableStrings measures what Fiber's Immutable mode (every
// request string copied) costs on a route shaped like ours: request id
// middleware, a path parameter, a query parameter and headers read, a small
// JSON answer. Both variants run in the same process, so their ratio carries
// over between machines.
func BenchmarkImmutableStrings(b *testing.B) {
	for _, bc := range []struct {
		name      string
		immutable bool
	}{{"zero-copy", false}, {"immutable", true}} {
		b.Run(bc.name, func(b *testing.B) {
			app := fiber.New(fiber.Config{Immutable: bc.immutable, DisableStartupMessage: true})
			app.Use(assignRequestID)
			app.Get("/api/v1/cases/:id", func(c *fiber.Ctx) error {
				_ = bearer(c)
				return c.JSON(fiber.Map{"id": c.Params("id"), "limit": c.Query("limit"), "request_id": requestID(c), "method": c.Method()})
			})
			h := app.Handler()
			var fctx fasthttp.RequestCtx
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				fctx.Request.Reset()
				fctx.Response.Reset()
				fctx.Request.Header.SetMethod("GET")
				fctx.Request.SetRequestURI("/api/v1/cases/0193a0c2-6d1e-7c3b-9a51-3f0e8e6b2a11?limit=50")
				fctx.Request.Header.Set("Authorization", "Bearer cvt_0123456789abcdef0123456789abcdef")
				fctx.Request.Header.Set("X-Request-Id", "req-0123456789")
				h(&fctx)
				if fctx.Response.StatusCode() != 200 {
					b.Fatalf("status %d", fctx.Response.StatusCode())
				}
			}
		})
	}
}
