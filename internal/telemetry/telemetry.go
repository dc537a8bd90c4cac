// Package telemetry provides the service's observability: OpenTelemetry tracing configured from
// the standard OTEL_* variables, Prometheus metrics on a private registry, and the MongoDB
// command monitor and Redis hook that feed them.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// DefaultServiceName is the service.name of the service's spans when neither Options.ServiceName
// nor OTEL_SERVICE_NAME nor OTEL_RESOURCE_ATTRIBUTES names it.
const DefaultServiceName = "support-chat"

// TenantKey is the span attribute that carries the id of the tenant a span works for.
const TenantKey = attribute.Key("chat.tenant.id")

// instrumentationName names the tracer of the spans this package creates itself.
const instrumentationName = "github.com/supportchat/supportchat/internal/telemetry"

// Protocols of OTEL_EXPORTER_OTLP_PROTOCOL and OTEL_EXPORTER_OTLP_TRACES_PROTOCOL.
const (
	protocolGRPC         = "grpc"
	protocolHTTPProtobuf = "http/protobuf"
)

// Options configures Setup.
type Options struct {
	// ServiceName is the default service.name; empty means DefaultServiceName. OTEL_SERVICE_NAME
	// and a service.name in OTEL_RESOURCE_ATTRIBUTES take precedence over it.
	ServiceName string
	// Version is the service.version resource attribute.
	Version string
	// Getenv reads the OTEL_* variables listed on Setup. Nil means os.Getenv.
	Getenv func(string) string
	// Exporter, when not nil, replaces the OTLP exporter and receives every span synchronously as
	// it ends (a simple span processor). Tests pass tracetest.NewInMemoryExporter(). Tracing is on
	// with an Exporter even without an OTLP endpoint, unless OTEL_SDK_DISABLED=true.
	Exporter sdktrace.SpanExporter
}

// Telemetry is the service's tracing set-up. Its zero value is not usable; call Setup.
type Telemetry struct {
	tp         trace.TracerProvider
	sdk        *sdktrace.TracerProvider // nil when tracing is off
	propagator propagation.TextMapPropagator
}

// Setup builds the service's tracing from the standard OTEL_* variables, read through
// Options.Getenv (docs/OPERATIONS.md lists them and their defaults). It installs no global
// provider or propagator: the provider it returns is passed explicitly to each instrumentation,
// so tests can run several set-ups side by side. Tracing is off (a no-op provider, no goroutine;
// incoming trace context still propagates to the logs) when OTEL_SDK_DISABLED is "true" or no
// OTLP endpoint is set and Options.Exporter is nil. Spans started under a context carrying a
// tenant get chat.tenant.id. It fails on an unknown protocol or sampler, or a bad sampler argument.
func Setup(ctx context.Context, o Options) (*Telemetry, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	t := &Telemetry{
		tp:         noop.NewTracerProvider(),
		propagator: propagation.TraceContext{},
	}
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return t, nil
	}
	endpoint, perSignal := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")), true
	if endpoint == "" {
		endpoint, perSignal = strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT")), false
	}
	if endpoint == "" && o.Exporter == nil {
		return t, nil
	}

	sampler, err := samplerFrom(getenv)
	if err != nil {
		return nil, err
	}
	res, err := newResource(ctx, o, getenv)
	if err != nil {
		return nil, err
	}
	var spans sdktrace.TracerProviderOption
	if o.Exporter != nil {
		spans = sdktrace.WithSyncer(o.Exporter)
	} else {
		exp, err := newExporter(ctx, getenv, endpoint, perSignal)
		if err != nil {
			return nil, err
		}
		spans = sdktrace.WithBatcher(exp)
	}
	t.sdk = sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sampler),
		// The tenant processor runs first, so the attribute is set before any exporter sees it.
		sdktrace.WithSpanProcessor(tenantProcessor{}),
		spans,
	)
	t.tp = t.sdk
	return t, nil
}

// TracerProvider returns the provider to pass to instrumentation; a no-op one when tracing is off.
func (t *Telemetry) TracerProvider() trace.TracerProvider { return t.tp }

// Propagator returns the W3C tracecontext propagator. The API is public, so what a caller
// sends is trusted only as far as correlation needs: its trace context is joined, its baggage
// is neither read nor forwarded (to the tenants' issuers, say).
func (t *Telemetry) Propagator() propagation.TextMapPropagator { return t.propagator }

// Enabled reports whether spans are recorded and exported.
func (t *Telemetry) Enabled() bool { return t.sdk != nil }

// Shutdown exports the spans still buffered and stops the exporter, within ctx's deadline. It
// does nothing when tracing is off.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t.sdk == nil {
		return nil
	}
	return t.sdk.Shutdown(ctx)
}

// newExporter returns the OTLP exporter for the configured protocol. endpoint is the traces
// endpoint when perSignal, else the base endpoint.
func newExporter(ctx context.Context, getenv func(string) string, endpoint string, perSignal bool) (sdktrace.SpanExporter, error) {
	protocol := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
	if protocol == "" {
		protocol = strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_PROTOCOL"))
	}
	if protocol == "" {
		protocol = protocolHTTPProtobuf
	}
	hasScheme := strings.Contains(endpoint, "://")
	switch protocol {
	case protocolGRPC:
		var opt otlptracegrpc.Option
		if hasScheme {
			opt = otlptracegrpc.WithEndpointURL(endpoint)
		} else {
			opt = otlptracegrpc.WithEndpoint(endpoint)
		}
		exp, err := otlptracegrpc.New(ctx, opt)
		if err != nil {
			return nil, fmt.Errorf("otlp grpc exporter: %w", err)
		}
		return exp, nil
	case protocolHTTPProtobuf:
		var opt otlptracehttp.Option
		switch {
		case !hasScheme:
			// host:port; the exporter appends /v1/traces.
			opt = otlptracehttp.WithEndpoint(endpoint)
		case perSignal:
			opt = otlptracehttp.WithEndpointURL(endpoint)
		default:
			opt = otlptracehttp.WithEndpointURL(strings.TrimSuffix(endpoint, "/") + "/v1/traces")
		}
		exp, err := otlptracehttp.New(ctx, opt)
		if err != nil {
			return nil, fmt.Errorf("otlp http exporter: %w", err)
		}
		return exp, nil
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL: want grpc or http/protobuf, got %q", protocol)
	}
}

// samplerFrom returns the sampler named by OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG. The
// parentbased samplers (the default) follow a caller's sampled flag, as the specification
// says; traceidratio decides by the trace id alone, so a caller cannot force its requests into
// the traces (docs/SECURITY.md).
func samplerFrom(getenv func(string) string) (sdktrace.Sampler, error) {
	name := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER")))
	ratio := func() (float64, error) {
		arg := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER_ARG"))
		if arg == "" {
			return 1, nil
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return 0, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG: want a ratio in [0, 1], got %q", arg)
		}
		return r, nil
	}
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio", "parentbased_traceidratio":
		r, err := ratio()
		if err != nil {
			return nil, err
		}
		if name == "traceidratio" {
			return sdktrace.TraceIDRatioBased(r), nil
		}
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)), nil
	default:
		return nil, fmt.Errorf("OTEL_TRACES_SAMPLER: unsupported sampler %q", name)
	}
}

// newResource describes the service: service.name and service.version from o, overridden by
// OTEL_RESOURCE_ATTRIBUTES and then OTEL_SERVICE_NAME, plus the SDK's and the host's attributes.
func newResource(ctx context.Context, o Options, getenv func(string) string) (*resource.Resource, error) {
	name := o.ServiceName
	if name == "" {
		name = DefaultServiceName
	}
	attrs := []attribute.KeyValue{semconv.ServiceName(name)}
	if o.Version != "" {
		attrs = append(attrs, semconv.ServiceVersion(o.Version))
	}
	fromEnv, err := parseResourceAttributes(getenv("OTEL_RESOURCE_ATTRIBUTES"))
	if err != nil {
		return nil, err
	}
	attrs = append(attrs, fromEnv...)
	if n := strings.TrimSpace(getenv("OTEL_SERVICE_NAME")); n != "" {
		attrs = append(attrs, semconv.ServiceName(n))
	}
	// Later attributes win over earlier ones with the same key.
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithHost(), resource.WithAttributes(attrs...))
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("resource: %w", err)
	}
	return res, nil
}

// parseResourceAttributes parses OTEL_RESOURCE_ATTRIBUTES: comma-separated key=value pairs whose
// values are percent-encoded.
func parseResourceAttributes(s string) ([]attribute.KeyValue, error) {
	var attrs []attribute.KeyValue
	for _, pair := range strings.Split(s, ",") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: want key=value, got %q", pair)
		}
		val, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: value of %s: %w", k, err)
		}
		attrs = append(attrs, attribute.String(k, val))
	}
	return attrs, nil
}
