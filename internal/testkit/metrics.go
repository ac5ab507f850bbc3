package testkit

import (
	"fmt"
	"net/http"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics is one scrape of a Prometheus endpoint, by family name.
type Metrics map[string]*dto.MetricFamily

// Scrape reads the metrics at url (http://host:port/metrics).
func Scrape(url string) (Metrics, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return Metrics(fams), nil
}

// Sum adds up the series of name whose labels include each of labels,
// written as in the exposition: `action="register"`. A histogram's or a
// summary's name_sum and name_count read its sum and count.
func (m Metrics) Sum(name string, labels ...string) float64 {
	want := map[string]string{}
	for _, l := range labels {
		k, v, _ := strings.Cut(l, "=")
		want[k] = strings.Trim(v, `"`)
	}
	fam, part := m[name], ""
	if fam == nil {
		for _, suffix := range []string{"_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && m[base] != nil {
				fam, part = m[base], suffix
			}
		}
	}
	if fam == nil {
		return 0
	}
	total := 0.0
	for _, s := range fam.GetMetric() {
		if !hasLabels(s, want) {
			continue
		}
		switch {
		case s.Counter != nil:
			total += s.Counter.GetValue()
		case s.Gauge != nil:
			total += s.Gauge.GetValue()
		case s.Untyped != nil:
			total += s.Untyped.GetValue()
		case s.Histogram != nil && part == "_sum":
			total += s.Histogram.GetSampleSum()
		case s.Histogram != nil && part == "_count":
			total += float64(s.Histogram.GetSampleCount())
		case s.Summary != nil && part == "_sum":
			total += s.Summary.GetSampleSum()
		case s.Summary != nil && part == "_count":
			total += float64(s.Summary.GetSampleCount())
		}
	}
	return total
}

func hasLabels(s *dto.Metric, want map[string]string) bool {
	found := 0
	for _, l := range s.GetLabel() {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			found++
		}
	}
	return found == len(want)
}
