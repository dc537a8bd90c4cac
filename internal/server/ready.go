package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/supportchat/supportchat/internal/httpapi"
	"github.com/supportchat/supportchat/internal/mongodb"
	"github.com/supportchat/supportchat/internal/telemetry"
	"github.com/supportchat/supportchat/internal/tenant"
)

// readinessObserver records the outcome of each readiness check (*telemetry.Metrics).
type readinessObserver interface {
	ReadinessCheck(check string, err error)
}

var _ readinessObserver = (*telemetry.Metrics)(nil)

// readiness returns the checks of /readyz, each reported to obs: MongoDB and the tenants are
// critical; Redis is not, since the service works without it (presence reads offline, events stop
// crossing replicas), and its failures are what the Redis-degraded alert counts.
func readiness(db *mongodb.DB, tenants *tenant.Registry, rdb redis.UniversalClient, obs readinessObserver) []httpapi.ReadyCheck {
	checks := []httpapi.ReadyCheck{
		{Name: "mongodb", Critical: true, Check: func(ctx context.Context) error {
			if db.Ping(ctx) != nil {
				return errors.New("mongodb unreachable")
			}
			return nil
		}},
		{Name: "tenants", Critical: true, Check: func(context.Context) error {
			if st := tenants.Status(); !st.Ready {
				return fmt.Errorf("no tenant loaded (%d invalid files)", st.Invalid)
			}
			return nil
		}},
		{Name: "redis", Critical: false, Check: func(ctx context.Context) error {
			if rdb.Ping(ctx).Err() != nil {
				return errors.New("redis unreachable: presence reads offline, live events and caches do not cross replicas")
			}
			return nil
		}},
	}
	for i := range checks {
		name, check := checks[i].Name, checks[i].Check
		checks[i].Check = func(ctx context.Context) error {
			err := check(ctx)
			obs.ReadinessCheck(name, err)
			return err
		}
	}
	return checks
}

// tracing returns the tracing middleware: otelgin's server spans when tracing is on. When it
// is off, spans would be no-ops, so only the caller's trace context is taken from the request
// headers (the access log still carries a propagated trace id); otelgin's no-op spans cost a
// fifth of a cached list's CPU.
func tracing(tel *telemetry.Telemetry) []gin.HandlerFunc {
	if !tel.Enabled() {
		prop := tel.Propagator()
		return []gin.HandlerFunc{func(c *gin.Context) {
			c.Request = c.Request.WithContext(prop.Extract(c.Request.Context(), propagation.HeaderCarrier(c.Request.Header)))
			c.Next()
		}}
	}
	return []gin.HandlerFunc{
		otelgin.Middleware(ServiceName, otelgin.WithTracerProvider(tel.TracerProvider()), otelgin.WithPropagators(tel.Propagator())),
		tenantSpanAttribute,
	}
}

// tenantSpanAttribute adds the tenant id to the request's server span once the tenant is known.
func tenantSpanAttribute(c *gin.Context) {
	c.Next()
	if t, err := tenant.FromContext(c.Request.Context()); err == nil {
		trace.SpanFromContext(c.Request.Context()).SetAttributes(attribute.String("chat.tenant.id", t.ID))
	}
}
