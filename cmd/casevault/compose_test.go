package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// composeFile is the part of docker-compose.yml the checks read.
type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Ports       []string          `yaml:"ports"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
		Healthcheck *struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
		DependsOn map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		StopGracePeriod string `yaml:"stop_grace_period"`
		Restart         string `yaml:"restart"`
	} `yaml:"services"`
}

// TestComposeFile checks docker-compose.yml for what a deployment of
// several replicas needs (issue 20 §13, §17). Docker cannot run here, so
// the file is parsed and checked property by property (`docker compose
// config` is the operator's check).
func TestComposeFile(t *testing.T) {
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(raw, &cf); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	app, ok := cf.Services["casevault"]
	if !ok {
		t.Fatal("no casevault service")
	}

	// oneShot services run to completion (meili-init): no health to check,
	// and others wait for their success.
	oneShot := func(name string) bool { return cf.Services[name].Restart == "no" }

	t.Run("health checks", func(t *testing.T) {
		for name, s := range cf.Services {
			if oneShot(name) {
				continue
			}
			if s.Healthcheck == nil || len(s.Healthcheck.Test) == 0 {
				t.Errorf("service %s has no health check", name)
			}
		}
		if app.Healthcheck == nil {
			return
		}
		if got := strings.Join(app.Healthcheck.Test, " "); got != "CMD /casevault healthcheck" {
			t.Errorf("casevault's health check is %q, want the binary's own healthcheck (the image has no shell)", got)
		}
	})

	t.Run("depends_on waits for health", func(t *testing.T) {
		for name, s := range cf.Services {
			for dep, d := range s.DependsOn {
				want := "service_healthy"
				if oneShot(dep) {
					want = "service_completed_successfully"
				}
				if d.Condition != want {
					t.Errorf("%s depends on %s with condition %q, want %q", name, dep, d.Condition, want)
				}
			}
		}
	})

	t.Run("required secrets fail fast", func(t *testing.T) {
		for _, m := range regexp.MustCompile(`\$\{([^}]*)\}`).FindAllStringSubmatch(string(raw), -1) {
			if !regexp.MustCompile(`^[A-Z0-9_]+:\?.+`).MatchString(m[1]) {
				t.Errorf("${%s}: a required setting must be ${VAR:?message}, or a missing one becomes an empty string", m[1])
			}
		}
	})

	t.Run("stop grace longer than the drain", func(t *testing.T) {
		drain, err := time.ParseDuration(app.Environment["CASEVAULT_SHUTDOWN_TIMEOUT"])
		if err != nil {
			t.Fatalf("CASEVAULT_SHUTDOWN_TIMEOUT: %v", err)
		}
		grace, err := time.ParseDuration(app.StopGracePeriod)
		if err != nil || grace <= drain {
			t.Errorf("stop_grace_period %q must be longer than the %v drain (%v)", app.StopGracePeriod, drain, err)
		}
	})

	t.Run("no fixed host port on the app", func(t *testing.T) {
		for _, p := range app.Ports {
			if strings.Contains(p, ":") {
				t.Errorf("port %q fixes a host port: a second replica cannot start", p)
			}
		}
	})

	t.Run("backups and their key outside the data volume", func(t *testing.T) {
		env := app.Environment
		if env["CASEVAULT_BACKUP_S3_ENDPOINT"] == "" || env["CASEVAULT_BACKUP_RECIPIENTS"] == "" {
			t.Errorf("replicas need a shared S3 backup repository and configured recipients, got endpoint %q recipients %q",
				env["CASEVAULT_BACKUP_S3_ENDPOINT"], env["CASEVAULT_BACKUP_RECIPIENTS"])
		}
		if d := env["CASEVAULT_BACKUP_DIR"]; d != "" || env["CASEVAULT_BACKUP_IDENTITY_FILE"] != "" {
			t.Errorf("a backup dir (%q) or identity file in the app's volumes", d)
		}
	})

	t.Run("meilisearch", func(t *testing.T) {
		// The version line of the OpenAPI description the adapter is
		// checked against (Meilisearch 1.53); v1.13 rejected its settings.
		if img := cf.Services["meilisearch"].Image; img != "getmeili/meilisearch:v1.53" {
			t.Errorf("meilisearch image %q, want the v1.53 line", img)
		}
		if k := app.Environment["CASEVAULT_MEILI_KEY"]; strings.Contains(k, "MEILI_MASTER_KEY") {
			t.Errorf("casevault is given Meilisearch's master key (%q): give it the scoped key", k)
		}
		if _, ok := cf.Services["meili-init"]; !ok {
			t.Error("no meili-init service creating casevault's scoped key")
		}
	})
}

// TestDockerfile: the data directory belongs to the user the server runs
// as (serve could not create index/ or backups/ in a root-owned /data),
// and the image's health check needs no shell.
func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(raw)
	for _, want := range []string{
		"chown 65532:65532 /out/data",
		"COPY --from=build --chown=65532:65532 /out/data /data",
		"USER 65532:65532",
		`CMD ["/casevault", "healthcheck"]`,
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}
