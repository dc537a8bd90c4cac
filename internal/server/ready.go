package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/supportchat/supportchat/internal/httpapi"
	"github.com/supportchat/supportchat/internal/mongodb"
	"github.com/supportchat/supportchat/internal/tenant"
)

// readiness returns the checks of /readyz: MongoDB and the tenants are critical; Redis is not,
// since the service works without it (presence reads offline, events stop crossing replicas).
func readiness(db *mongodb.DB, tenants *tenant.Registry, rdb redis.UniversalClient) []httpapi.ReadyCheck {
	return []httpapi.ReadyCheck{
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
}

// tenantSpanAttribute adds the tenant id to the request's server span once the tenant is known.
func tenantSpanAttribute(c *gin.Context) {
	c.Next()
	if t, err := tenant.FromContext(c.Request.Context()); err == nil {
		trace.SpanFromContext(c.Request.Context()).SetAttributes(attribute.String("chat.tenant.id", t.ID))
	}
}
