// families: Prometheus' Go client libraries writing MetricFamily messages, for the agreement
// tests of pushguard's protobuf parser (test/integration/exposition-protobuf-go.test.ts). Built
// offline in GOPATH mode from Debian's golang-go and golang-github-prometheus-client-golang-dev
// (see test/support/clients/index.ts).
//
//	families -push URL  pushes a fixed set of client_golang collectors to URL with push.Pusher,
//	                    the way a batch job does (the body is client_golang's own encoding)
//	families -encode    reads bodies as JSON on stdin (an array of arrays of families, see spec)
//	                    and writes each, hex-encoded on its own line, with expfmt's delimited
//	                    encoder, the one push.Pusher uses
//
// Exit 0 on success; 1 with the error on stderr.
package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/golang/protobuf/proto"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// spec is one MetricFamily in the terms of pushguard's parsed model (test/support/protobuf.ts
// FamilySpec). Doubles are strings so that JSON can carry +Inf, NaN and -0.
type spec struct {
	Name    string       `json:"name"`
	Help    *string      `json:"help"`
	Type    *int32       `json:"type"`
	Metrics []metricSpec `json:"metrics"`
}

type metricSpec struct {
	Labels      [][2]string `json:"labels"`
	Values      []string    `json:"values"`
	Buckets     []double    `json:"buckets"`
	Quantiles   []double    `json:"quantiles"`
	TimestampMs *int64      `json:"timestampMs"`
}

type double float64

func (d *double) UnmarshalJSON(data []byte) error {
	var text string
	if err := json.Unmarshal(data, &text); err != nil {
		return err
	}
	value, err := strconv.ParseFloat(text, 64)
	*d = double(value)
	return err
}

func main() {
	url := flag.String("push", "", "push the fixed collectors to this URL")
	encode := flag.Bool("encode", false, "encode the bodies read from stdin")
	flag.Parse()
	switch {
	case *url != "":
		exit(pushCollectors(*url))
	case *encode:
		exit(encodeBodies())
	default:
		exit(fmt.Errorf("want -push URL or -encode"))
	}
}

// pushCollectors pushes one collector of every kind, with values the test expects.
func pushCollectors(url string) error {
	registry := prometheus.NewRegistry()

	requests := prometheus.NewCounterVec(
		prometheus.CounterOpts{Name: "requests_total", Help: "Requests handled."},
		[]string{"method", "code"},
	)
	requests.WithLabelValues("POST", "500").Inc()
	requests.WithLabelValues("GET", "200").(prometheus.ExemplarAdder).AddWithExemplar(3, prometheus.Labels{"trace_id": "abc"})

	temperature := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "temperature_celsius",
		Help:        "Température, in °C.",
		ConstLabels: prometheus.Labels{"room": "küche"},
	})
	temperature.Set(21.5)

	latency := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "latency_seconds", Help: "Latency.", Buckets: []float64{0.1, 1, 10},
	})
	latency.Observe(0.5)
	latency.(prometheus.ExemplarObserver).ObserveWithExemplar(20, prometheus.Labels{"trace_id": "def"})

	native := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "native_seconds", Help: "Classic and native buckets.", Buckets: []float64{1},
		NativeHistogramBucketFactor: 1.1,
	})
	for _, v := range []float64{0.5, 3, 3.1, -2, 0} {
		native.Observe(v)
	}

	sizes := prometheus.NewSummary(prometheus.SummaryOpts{
		Name: "size_bytes", Help: "Sizes.", Objectives: map[float64]float64{0.99: 0.001, 0.5: 0.05, 0.9: 0.01},
	})
	sizes.Observe(10)

	untyped := prometheus.NewUntypedFunc(prometheus.UntypedOpts{Name: "untyped_value", Help: "Untyped."}, func() float64 { return 7 })

	registry.MustRegister(requests, temperature, latency, native, sizes, untyped, stamped{})
	return push.New(url, "exposition-test").Gatherer(registry).Push()
}

// stamped is a collector of one gauge with a timestamp, which the Pushgateway refuses.
type stamped struct{}

var stampedDesc = prometheus.NewDesc("stamped_value", "With a timestamp.", nil, nil)

func (stamped) Describe(ch chan<- *prometheus.Desc) { ch <- stampedDesc }
func (stamped) Collect(ch chan<- prometheus.Metric) {
	metric := prometheus.MustNewConstMetric(stampedDesc, prometheus.GaugeValue, 1)
	ch <- prometheus.NewMetricWithTimestamp(time.UnixMilli(1_700_000_000_000), metric)
}

func encodeBodies() error {
	var bodies [][]spec
	if err := json.NewDecoder(os.Stdin).Decode(&bodies); err != nil {
		return err
	}
	out := bufio.NewWriter(os.Stdout)
	for _, families := range bodies {
		var body bytesWriter
		encoder := expfmt.NewEncoder(&body, expfmt.FmtProtoDelim)
		for _, family := range families {
			if err := encoder.Encode(familyOf(family)); err != nil {
				return err
			}
		}
		fmt.Fprintln(out, hex.EncodeToString(body))
	}
	return out.Flush()
}

func familyOf(s spec) *dto.MetricFamily {
	family := &dto.MetricFamily{Name: proto.String(s.Name), Help: s.Help}
	if s.Type != nil {
		family.Type = dto.MetricType(*s.Type).Enum()
	}
	for _, m := range s.Metrics {
		metric := &dto.Metric{TimestampMs: m.TimestampMs}
		for _, pair := range m.Labels {
			metric.Label = append(metric.Label, &dto.LabelPair{Name: proto.String(pair[0]), Value: proto.String(pair[1])})
		}
		for _, kind := range m.Values {
			switch kind {
			case "gauge":
				metric.Gauge = &dto.Gauge{Value: proto.Float64(1)}
			case "counter":
				metric.Counter = &dto.Counter{Value: proto.Float64(1)}
			case "untyped":
				metric.Untyped = &dto.Untyped{Value: proto.Float64(1)}
			case "summary":
				summary := &dto.Summary{SampleCount: proto.Uint64(1), SampleSum: proto.Float64(0.5)}
				for _, q := range m.Quantiles {
					summary.Quantile = append(summary.Quantile, &dto.Quantile{Quantile: proto.Float64(float64(q)), Value: proto.Float64(1)})
				}
				metric.Summary = summary
			case "histogram":
				histogram := &dto.Histogram{SampleCount: proto.Uint64(1), SampleSum: proto.Float64(0.5)}
				for _, bound := range m.Buckets {
					histogram.Bucket = append(histogram.Bucket, &dto.Bucket{CumulativeCount: proto.Uint64(1), UpperBound: proto.Float64(float64(bound))})
				}
				metric.Histogram = histogram
			}
		}
		family.Metric = append(family.Metric, metric)
	}
	return family
}

type bytesWriter []byte

func (w *bytesWriter) Write(p []byte) (int, error) {
	*w = append(*w, p...)
	return len(p), nil
}

func exit(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	os.Exit(0)
}
