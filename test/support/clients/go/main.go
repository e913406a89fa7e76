// pushclient: a batch job pushing with Prometheus' Go client (client_golang/prometheus/push),
// used by the end-to-end tests. Built offline in GOPATH mode from Debian's golang-go and
// golang-github-prometheus-client-golang-dev (see test/support/clients.ts).
//
//	PUSHGUARD_TOKEN=... pushclient -url http://127.0.0.1:PORT -job team-a-backup -op push \
//	    -grouping instance=db1 -value 42
//
// The token is sent as the Basic-auth password (`.BasicAuth(user, token)`); without a token no
// credential is sent. `-op readme` runs the README's Go example compiled verbatim (the generated
// readme_example.go); its host `pushguard.example:9091` is dialed at PUSHGUARD_ADDR instead.
// Exit 0 on success; 1 with the client's own error on stderr.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
	"github.com/prometheus/common/expfmt"
)

type groupings []string

func (g *groupings) String() string     { return strings.Join(*g, ",") }
func (g *groupings) Set(s string) error { *g = append(*g, s); return nil }

// readmeHost is the host the README examples push to; tests redirect it to the real pushguard.
const readmeHost = "pushguard.example:9091"

func main() {
	url := flag.String("url", "", "pushguard (or Pushgateway) base URL")
	job := flag.String("job", "", "job name")
	op := flag.String("op", "push", "push (PUT), add (POST), delete (DELETE) or readme")
	user := flag.String("user", "ci", "Basic-auth user name (ignored by pushguard)")
	metric := flag.String("metric", "backup_last_success_seconds", "gauge name")
	value := flag.Float64("value", 1, "gauge value")
	format := flag.String("format", "protobuf", "body format: protobuf (the default of client_golang) or text")
	var grouping groupings
	flag.Var(&grouping, "grouping", "grouping label name=value (repeatable)")
	flag.Parse()

	// Dial the README's example host at the address under test; every other address as given.
	if addr := os.Getenv("PUSHGUARD_ADDR"); addr != "" {
		transport := http.DefaultTransport.(*http.Transport)
		dialer := &net.Dialer{Timeout: 5 * time.Second}
		transport.DialContext = func(ctx context.Context, network, target string) (net.Conn, error) {
			if target == readmeHost {
				target = addr
			}
			return dialer.DialContext(ctx, network, target)
		}
	}

	gauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: *metric, Help: "Pushed by the Go end-to-end client."})
	gauge.Set(*value)

	if *op == "readme" {
		gauge.SetToCurrentTime()
		exit(readmeExample(gauge))
	}

	pusher := push.New(*url, *job).Collector(gauge)
	if *format == "text" {
		pusher = pusher.Format(expfmt.FmtText)
	}
	for _, pair := range grouping {
		name, val, ok := strings.Cut(pair, "=")
		if !ok {
			exit(fmt.Errorf("bad -grouping %q: want name=value", pair))
		}
		pusher = pusher.Grouping(name, val)
	}
	if token := os.Getenv("PUSHGUARD_TOKEN"); token != "" {
		pusher = pusher.BasicAuth(*user, token)
	}
	switch *op {
	case "push":
		exit(pusher.Push())
	case "add":
		exit(pusher.Add())
	case "delete":
		exit(pusher.Delete())
	default:
		exit(fmt.Errorf("unknown -op %q", *op))
	}
}

func exit(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	os.Exit(0)
}
