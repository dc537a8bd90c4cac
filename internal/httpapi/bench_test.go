package httpapi_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
)

// BenchmarkList measures GET /api/v1/chat/list through the whole handler chain (tenant, token
// verification, MongoDB on FerretDB, Redis presence) for a customer with 20 conversations in a
// tenant of 200.
func BenchmarkList(b *testing.B) {
	s := newStack(b, stackOptions{productionCaches: true})
	ada := s.customer(shop, "cust-ada")
	for i := range 200 {
		who := ada
		if i%10 != 0 {
			who = s.customer(shop, fmt.Sprintf("cust-%d", i))
		}
		who.start(fmt.Sprintf("question %d", i))
	}
	for _, tc := range []struct {
		name string
		who  user
	}{{"customer", ada}, {"admin", s.admin(shop, "admin-1")}} {
		b.Run(tc.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/api/v1/chat/list?limit=20", nil)
			req.Header.Set("X-Tenant-ID", shop)
			req.Header.Set("Authorization", "Bearer "+tc.who.token)
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				s.handler.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}

// BenchmarkBareGin is the floor the list is compared with: a Gin handler that encodes a
// constant body of the same size.
func BenchmarkBareGin(b *testing.B) {
	r := gin.New()
	body := map[string]any{"conversations": make([]map[string]any, 20), "next_cursor": nil}
	r.GET("/list", func(c *gin.Context) { c.JSON(http.StatusOK, body) })
	req := httptest.NewRequest("GET", "/list", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
	}
}
