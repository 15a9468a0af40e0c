// Package api is the HTTP face of casevault: a Fiber app with the routes of
// the v1 contract, authentication and the role matrix, problem+json errors,
// request IDs, limits, metrics, health and the OpenAPI document. It only
// translates HTTP into calls on the domain packages.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
)

// Auditor records events that are not part of a write transaction: reads,
// denied requests. Record must return only once the event is durable, except
// for the repeats of a denial it aggregates (audit.Log.Record).
type Auditor interface {
	Record(ctx context.Context, ch cases.Change, outcome string) error
}

// Check is one readiness probe.
type Check struct {
	Name string
	// Probe returns nil when healthy. A Degraded probe failing leaves the
	// instance ready (e.g. the search index catching up).
	Probe    func(ctx context.Context) (detail any, err error)
	Degraded bool
}

// Config holds the HTTP limits.
type Config struct {
	JSONBodyLimit   int64
	AttachmentLimit int64
	Version         string
}

// Deps are the collaborators the routes call.
type Deps struct {
	Cases   *cases.Service
	Tokens  *auth.Tokens
	Audit   Auditor
	Checks  []Check
	Metrics *prometheus.Registry
	Log     *slog.Logger
	// AuditTx runs in the token-creation transaction (audit).
	AuditTx cases.TxHook
	// AuditTrail serves the audit routes (nil: none).
	AuditTrail AuditTrail
	// Retention serves schedule, holds, explain and sweep routes (nil: none).
	Retention *RetentionDeps
	// Exports serves the e-discovery export routes (nil: none).
	Exports ExportService
	// Privacy serves erasure, exact customer lookup, consent withdrawal and
	// the access export (nil: none).
	Privacy *PrivacyDeps
	// Attachments serves the attachment routes (nil: none).
	Attachments AttachmentStore
	// Search is optional (nil: no search routes).
	Search Searcher
	// SavedSearches serves the saved-search routes (nil: none).
	SavedSearches SavedSearches
	// Backups serves the backup routes (nil: none).
	Backups *BackupDeps
	// Reindex starts a rebuild of the search index in the background and
	// returns search.ErrReindexRunning when one is running (nil: no route).
	Reindex func(ctx context.Context) error
	// Console mounts the web console's routes on the app (nil: no
	// console); it runs after the API's routes, before the 404 handler.
	Console func(app *fiber.App)
}

// Server is the configured HTTP app.
type Server struct {
	cfg    Config
	d      Deps
	log    *slog.Logger
	app    *fiber.App
	routes []route
	reqs   *prometheus.CounterVec
	lat    *prometheus.HistogramVec
	// runs are the background runs requests started (backups).
	runs *runs
}

// New builds the app and its routes.
func New(cfg Config, d Deps) *Server {
	if cfg.JSONBodyLimit <= 0 {
		cfg.JSONBodyLimit = 1 << 20
	}

	if cfg.AttachmentLimit <= 0 {
		cfg.AttachmentLimit = 100 << 20
	}

	if d.Log == nil {
		d.Log = slog.Default()
	}

	if d.Metrics == nil {
		d.Metrics = prometheus.NewRegistry()
	}

	s := &Server{cfg: cfg, d: d, log: d.Log, runs: newRuns()}
	s.reqs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "casevault_http_requests_total", Help: "HTTP requests by route, method and status.",
	}, []string{"route", "method", "status"})
	s.lat = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "casevault_http_request_duration_seconds", Help: "HTTP request latency by route.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
	}, []string{"route", "method"})
	d.Metrics.MustRegister(s.reqs, s.lat)

	s.app = fiber.New(fiber.Config{
		// The attachment limit is the hard ceiling; JSON routes enforce
		// their own smaller limit in readBody. Streaming keeps a 100 MiB
		// upload out of memory.
		BodyLimit:         int(cfg.AttachmentLimit) + 1<<20,
		StreamRequestBody: true,
		// Multipart bodies are parsed as a stream by the attachment handler;
		// fasthttp's pre-parse would buffer the whole upload.
		DisablePreParseMultipartForm: true,
		DisableStartupMessage:        true,
		ErrorHandler:                 s.errorHandler,
		ReadTimeout:                  5 * time.Minute,
		WriteTimeout:                 5 * time.Minute,
		IdleTimeout:                  2 * time.Minute,
		AppName:                      "casevault",
		// Fiber's strings (Method, Get, Params, Query, Path) point into
		// buffers the next request on the connection reuses. Audit events,
		// background runs and metric labels outlive the handler, so every
		// string is copied once here rather than at each place that keeps
		// one (measured: see ARCHITECTURE.md, "Immutable request strings").
		// Body slices are not covered: readBody decodes them at once.
		Immutable: true,
	})
	s.app.Use(assignRequestID)
	s.app.Use(recover.New())
	s.app.Use(s.observe)
	s.app.Use(func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
		return c.Next()
	})
	s.buildRoutes()
	for _, r := range s.routes {
		s.register(r)
	}

	if d.Console != nil {
		d.Console(s.app)
	}

	s.app.Use(func(c *fiber.Ctx) error {
		return errStatus(fiber.StatusNotFound, "no route %s %s", c.Method(), c.Path())
	})
	return s
}

// App exposes the Fiber app (tests use app.Test).
func (s *Server) App() *fiber.App { return s.app }

// Serve serves on ln until it closes. Connections are watched so that an
// upload can tell a body cut short by a closed connection from a complete
// one (see completeBody) and is not committed for a client that left.
func (s *Server) Serve(ln net.Listener) error { return s.app.Listener(watchingListener{ln}) }

// Shutdown stops accepting connections, cancels the background runs that
// requests started and drains in-flight requests.
func (s *Server) Shutdown(ctx context.Context) error {
	s.runs.stop()
	return s.app.ShutdownWithContext(ctx)
}

// runs lets work a request starts outlive the request but not the server:
// the server's lifetime is kept as a channel that stop closes, not as a
// context.
type runs struct {
	done     chan struct{}
	stopOnce sync.Once
}

func newRuns() *runs { return &runs{done: make(chan struct{})} }

// detach returns a context for a run started by a request: it keeps the
// request context's values but not its cancellation, and ends when the
// server stops or cancel is called (call it when the run ends).
func (r *runs) detach(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		select {
		case <-r.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// stop cancels every detached run.
func (r *runs) stop() { r.stopOnce.Do(func() { close(r.done) }) }

const requestIDKey = "casevault.request_id"

// maxRequestIDLen bounds a client-supplied X-Request-Id: it is stored in
// every audit event of the request, so a client must not be able to put
// arbitrary text (or a kilobyte of it) into the trail.
const maxRequestIDLen = 128

// validRequestID reports whether a client's X-Request-Id is a bounded safe
// token ([A-Za-z0-9._:-], at most maxRequestIDLen bytes).
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch b := id[i]; {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9', b == '.', b == '_', b == ':', b == '-':
		default:
			return false
		}
	}
	return true
}

// assignRequestID keeps the client's X-Request-Id when it is a safe token
// and generates one otherwise, then echoes it on the response.
func assignRequestID(c *fiber.Ctx) error {
	id := c.Get(fiber.HeaderXRequestID)
	if !validRequestID(id) {
		id = uuid.NewString()
	}
	c.Set(fiber.HeaderXRequestID, id)
	c.Locals(requestIDKey, id)
	return c.Next()
}

// RequestID is the request's ID (the console's audit events carry it too).
func RequestID(c *fiber.Ctx) string { return requestID(c) }

func requestID(c *fiber.Ctx) string {
	id, _ := c.Locals(requestIDKey).(string)
	return id
}

// observe logs and measures every request. It never logs headers or bodies,
// so tokens and personal data stay out of the logs.
func (s *Server) observe(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	if err != nil {
		if herr := s.errorHandler(c, err); herr != nil {
			s.log.Error("writing error response", "err", herr)
		}
	}
	status := c.Response().StatusCode()
	routePath := c.Route().Path
	if routePath == "/" && c.Path() != "/" {
		routePath = "unmatched"
	}
	d := time.Since(start)
	s.reqs.WithLabelValues(routePath, c.Method(), strconv.Itoa(status)).Inc()
	s.lat.WithLabelValues(routePath, c.Method()).Observe(d.Seconds())
	lvl := slog.LevelDebug
	if status >= 500 {
		lvl = slog.LevelError
	} else if status >= 400 {
		lvl = slog.LevelInfo
	}
	s.log.Log(c.UserContext(), lvl, "http", "method", c.Method(), "route", routePath, "status", status,
		"duration_ms", float64(d.Microseconds())/1000, "request_id", requestID(c))
	return nil
}

func bearer(c *fiber.Ctx) string {
	h := c.Get(fiber.HeaderAuthorization)
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// guard authenticates and authorizes every route that needs a token, then
// validates the request target (checkParams) so that no handler or store
// sees a NUL, invalid UTF-8 or a cursor it does not issue.
func (s *Server) guard(r route) fiber.Handler {
	perm, routeName := r.perm, r.method+" "+r.path
	return func(c *fiber.Ctx) error {
		ctx := c.UserContext()
		base := cases.Actor{RequestID: requestID(c), ClientIP: c.IP()}
		secret := bearer(c)
		if secret == "" {
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="casevault"`)
			s.deny(c, base, "auth.missing", routeName)
			return errStatus(fiber.StatusUnauthorized, "missing bearer token")
		}
		tok, err := s.d.Tokens.Authenticate(ctx, secret)
		if errors.Is(err, auth.ErrInvalidToken) {
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="casevault", error="invalid_token"`)
			s.deny(c, base, "auth.invalid", routeName)
			return errStatus(fiber.StatusUnauthorized, "invalid or revoked token")
		}
		if err != nil {
			return err
		}
		a := base
		a.TokenID, a.Name, a.Role = tok.ID, tok.Name, string(tok.Role)
		if !tok.Role.Allows(perm) {
			s.deny(c, a, "auth.forbidden", routeName)
			return errStatus(fiber.StatusForbidden, "role %s may not call %s", tok.Role, routeName)
		}
		c.Locals(actorKey, a)
		if err := checkParams(c, r); err != nil {
			return err
		}
		return c.Next()
	}
}

const (
	actorKey  = "casevault.actor"
	detailKey = "casevault.audit_detail"
	targetKey = "casevault.audit_target"
)

func actor(c *fiber.Ctx) cases.Actor {
	a, _ := c.Locals(actorKey).(cases.Actor)
	return a
}

// deny records an authentication or authorization failure. A failure to
// record is logged but does not turn a 401 into a 503. The audit log
// aggregates denials (audit/denials.go): the first per source, action and
// minute is stored at once, the repeats as one counted event, so a flood of
// bad requests cannot flood the trail.
func (s *Server) deny(c *fiber.Ctx, a cases.Actor, action, routeName string) {
	RecordDenial(c.UserContext(), s.d.Audit, s.log, a, action, routeName)
}

// RecordDenial is deny for the API and the console: the event of a refused
// request (action auth.missing, auth.invalid or auth.forbidden) on
// routeName.
func RecordDenial(ctx context.Context, aud Auditor, log *slog.Logger, a cases.Actor, action, routeName string) {
	if aud == nil {
		return
	}
	ch := cases.Change{Actor: a, Action: action, TargetType: "route", TargetID: routeName}
	if err := aud.Record(ctx, ch, "denied"); err != nil {
		log.Warn("audit of denied request failed", "request_id", a.RequestID, "err", err)
	}
}

// auditRead records a successful read of personal data before the response
// leaves: if the event cannot be stored, the client gets 503, not the data.
func (s *Server) auditRead(action, target string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := c.Next(); err != nil {
			return err
		}
		if c.Response().StatusCode() >= 400 || s.d.Audit == nil {
			return nil
		}
		id := c.Params("id")
		if v, ok := c.Locals(targetKey).(string); ok {
			id = v
		}
		ch := cases.Change{Actor: actor(c), Action: action, TargetType: target, TargetID: id}
		if det, ok := c.Locals(detailKey).(map[string]any); ok {
			ch.Detail = det
		}
		if err := s.d.Audit.Record(c.UserContext(), ch, "ok"); err != nil {
			c.Response().ResetBody()
			return err
		}
		return nil
	}
}

func (s *Server) metricsHandler() fiber.Handler {
	h := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(s.d.Metrics, promhttp.HandlerOpts{}))
	return func(c *fiber.Ctx) error {
		h(c.Context())
		return nil
	}
}

func (s *Server) healthz(c *fiber.Ctx) error {
	return c.JSON(health{Status: "ok", Version: s.cfg.Version})
}

func (s *Server) readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 3*time.Second)
	defer cancel()
	ready := true
	out := map[string]checkState{}
	for _, chk := range s.d.Checks {
		detail, err := chk.Probe(ctx)
		entry := checkState{Status: "ok", Detail: detail}
		if err != nil {
			entry.Error = err.Error()
			if chk.Degraded {
				entry.Status = "degraded"
			} else {
				entry.Status = "down"
				ready = false
			}
		}
		out[chk.Name] = entry
	}
	status := fiber.StatusOK
	if !ready {
		status = fiber.StatusServiceUnavailable
		c.Set("Retry-After", "5")
	}
	return c.Status(status).JSON(readiness{Ready: ready, Checks: out})
}
