package telemetry_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/supportchat/supportchat/internal/telemetry"
	"github.com/supportchat/supportchat/internal/tenant"
)

// env returns a Getenv reading m.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// MustSetup runs Setup and shuts it down at the end of the test.
func MustSetup(tb testing.TB, o telemetry.Options) *telemetry.Telemetry {
	tb.Helper()
	tel, err := telemetry.Setup(context.Background(), o)
	if err != nil {
		tb.Fatalf("Setup(%+v) = %v", o, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := tel.Shutdown(ctx); err != nil {
			tb.Errorf("Shutdown = %v", err)
		}
	})
	return tel
}

// attrs returns a span's or resource's attributes as strings by key.
func attrs(kvs []attribute.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.String()
	}
	return m
}

func TestSetupTracingOff(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		exp  bool
	}{
		{"no endpoint configured", map[string]string{}, false},
		{"OTEL_SDK_DISABLED=true despite an endpoint", map[string]string{
			"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, false},
		{"OTEL_SDK_DISABLED=TRUE despite an injected exporter", map[string]string{"OTEL_SDK_DISABLED": "TRUE"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := telemetry.Options{Getenv: env(tc.env)}
			var exp *tracetest.InMemoryExporter
			if tc.exp {
				exp = tracetest.NewInMemoryExporter()
				o.Exporter = exp
			}
			tel := MustSetup(t, o)
			if tel.Enabled() {
				t.Error("Enabled() = true, want false")
			}
			_, span := tel.TracerProvider().Tracer("test").Start(context.Background(), "op")
			if span.IsRecording() {
				t.Error("span.IsRecording() = true with tracing off")
			}
			span.End()
			if exp != nil && len(exp.GetSpans()) != 0 {
				t.Errorf("exporter got %d spans with tracing off", len(exp.GetSpans()))
			}
		})
	}
}

func TestSetupOTLPEndpointTurnsTracingOn(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{"base endpoint, default protocol http/protobuf", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}},
		{"traces endpoint over http", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}},
		{"grpc", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}},
		{"traces protocol wins", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "127.0.0.1:4317",
			"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tel := MustSetup(t, telemetry.Options{Getenv: env(tc.env)})
			if !tel.Enabled() {
				t.Error("Enabled() = false, want true")
			}
		})
	}
}

func TestSetupRejectsBadConfiguration(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{"unknown protocol", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"}},
		{"unknown sampler", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_SAMPLER": "sometimes"}},
		{"ratio out of range", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
			"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"}},
		{"malformed resource attributes", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
			"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tel, err := telemetry.Setup(context.Background(), telemetry.Options{Getenv: env(tc.env)}); err == nil {
				_ = tel.Shutdown(context.Background())
				t.Error("Setup = nil error, want one")
			}
		})
	}
}

func TestSpansReachTheInjectedExporterWithTenantAndResource(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tel := MustSetup(t, telemetry.Options{Version: "1.2.3", Getenv: env(map[string]string{
		"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=prod,team=support%20ops",
	}), Exporter: exp})
	if !tel.Enabled() {
		t.Fatal("Enabled() = false with an injected exporter")
	}
	tr := tel.TracerProvider().Tracer("test")
	ctx := tenant.NewContext(context.Background(), &tenant.Tenant{ID: "demo-shop"})
	ctx, parent := tr.Start(ctx, "with tenant")
	_, child := tr.Start(ctx, "child")
	child.End()
	parent.End()
	_, none := tr.Start(context.Background(), "without tenant")
	none.End()

	spans := exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("got %d spans, want 3", len(spans))
	}
	for _, s := range spans {
		got := attrs(s.Attributes)[string(telemetry.TenantKey)]
		want := "demo-shop"
		if s.Name == "without tenant" {
			want = ""
		}
		if got != want {
			t.Errorf("span %q chat.tenant.id = %q, want %q", s.Name, got, want)
		}
	}
	res := attrs(spans[0].Resource.Attributes())
	for k, want := range map[string]string{
		"service.name": "support-chat", "service.version": "1.2.3",
		"deployment.environment.name": "prod", "team": "support ops",
	} {
		if res[k] != want {
			t.Errorf("resource %s = %q, want %q (resource %v)", k, res[k], want, res)
		}
	}
}

func TestServiceNameFromEnvironment(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    telemetry.Options
		env  map[string]string
		want string
	}{
		{"default", telemetry.Options{}, nil, "support-chat"},
		{"option", telemetry.Options{ServiceName: "chatd"}, nil, "chatd"},
		{"resource attributes win over the option", telemetry.Options{ServiceName: "chatd"},
			map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs"}, "from-attrs"},
		{"OTEL_SERVICE_NAME wins over everything", telemetry.Options{ServiceName: "chatd"},
			map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs", "OTEL_SERVICE_NAME": "chat-eu"}, "chat-eu"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exp := tracetest.NewInMemoryExporter()
			tc.o.Exporter, tc.o.Getenv = exp, env(tc.env)
			tel := MustSetup(t, tc.o)
			_, span := tel.TracerProvider().Tracer("test").Start(context.Background(), "op")
			span.End()
			if got := attrs(exp.GetSpans()[0].Resource.Attributes())["service.name"]; got != tc.want {
				t.Errorf("service.name = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSamplerFromEnvironment(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want int
	}{
		{map[string]string{}, 1},
		{map[string]string{"OTEL_TRACES_SAMPLER": "always_off"}, 0},
		{map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}, 0},
		{map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1"}, 1},
	} {
		exp := tracetest.NewInMemoryExporter()
		tel := MustSetup(t, telemetry.Options{Getenv: env(tc.env), Exporter: exp})
		_, span := tel.TracerProvider().Tracer("test").Start(context.Background(), "op")
		span.End()
		if got := len(exp.GetSpans()); got != tc.want {
			t.Errorf("with %v: %d spans exported, want %d", tc.env, got, tc.want)
		}
	}
}

func TestPropagatorJoinsTraceContextOnly(t *testing.T) {
	for _, o := range []telemetry.Options{
		{Getenv: env(nil)},
		{Getenv: env(nil), Exporter: tracetest.NewInMemoryExporter()},
	} {
		tel := MustSetup(t, o)
		fields := tel.Propagator().Fields()
		if !slices.Contains(fields, "traceparent") || slices.Contains(fields, "baggage") {
			t.Errorf("Propagator().Fields() = %v, want traceparent and no baggage", fields)
		}
		// An incoming trace context survives even when tracing is off, so logs keep the trace
		// id; the caller's baggage is neither read nor forwarded.
		in := http.Header{}
		in.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		in.Set("baggage", "k=v")
		ctx := tel.Propagator().Extract(context.Background(), propagation.HeaderCarrier(in))
		if b := baggage.FromContext(ctx); b.Len() != 0 {
			t.Errorf("enabled=%v: the caller's baggage was read: %v", tel.Enabled(), b)
		}
		ctx, span := tel.TracerProvider().Tracer("test").Start(ctx, "server")
		if got := span.SpanContext().TraceID().String(); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("enabled=%v: trace id = %s, want the incoming one", tel.Enabled(), got)
		}
		out := http.Header{}
		tel.Propagator().Inject(ctx, propagation.HeaderCarrier(out))
		span.End()
		if out.Get("traceparent") == "" || out.Get("baggage") != "" {
			t.Errorf("enabled=%v: injected headers %v, want traceparent and no baggage", tel.Enabled(), out)
		}
	}
}
