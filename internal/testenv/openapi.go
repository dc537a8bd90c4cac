package testenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	legacyrouter "github.com/getkin/kin-openapi/routers/legacy"

	"github.com/supportchat/supportchat/api"
)

// OpenAPI checks the answers of a running service against api/openapi.yaml, the contract.
type OpenAPI struct {
	doc    *openapi3.T
	router routers.Router
}

// LoadOpenAPI loads api/openapi.yaml with base (the URL of the server under test, such as
// http://127.0.0.1:41234) as its only server.
func LoadOpenAPI(tb testing.TB, base string) *OpenAPI {
	tb.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(api.Document())
	if err != nil {
		tb.Fatalf("testenv: load api/openapi.yaml: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: base}}
	r, err := legacyrouter.NewRouter(doc)
	if err != nil {
		tb.Fatalf("testenv: openapi router: %v", err)
	}
	return &OpenAPI{doc: doc, router: r}
}

// Check returns why the answer (status, header, body) to req does not match the document: an
// undocumented route, status, header or field. A path the document does not have must answer
// its generic NotFound response, and a documented path asked with a method it does not have
// its MethodNotAllowed response.
func (o *OpenAPI) Check(req *http.Request, status int, header http.Header, body []byte) error {
	what := "api/openapi.yaml"
	route, params, err := o.router.FindRoute(req)
	if err != nil {
		var name string
		route, name = o.unmatched(req)
		what += " (no such operation: its generic response " + name + ")"
	}
	if status >= 300 && status < 400 && route.Operation.Responses.Status(status) == nil {
		// ValidateResponse lets redirects pass unchecked.
		return fmt.Errorf("%s %s → %d: a redirect %s does not document", req.Method, req.URL.Path, status, what)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return fmt.Errorf("%s %s → %d does not match %s: %w", req.Method, req.URL.Path, status, what, err)
	}
	return nil
}

// Do sends req with client, fails the test when there is no answer or the answer does not
// match the document, and returns the answer with its body read.
func (o *OpenAPI) Do(tb testing.TB, client *http.Client, req *http.Request) (*http.Response, []byte) {
	tb.Helper()
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: reading the body: %v", req.Method, req.URL.Path, err)
	}
	if err := o.Check(req, resp.StatusCode, resp.Header, body); err != nil {
		tb.Errorf("%v\nbody: %s", err, body)
	}
	return resp, body
}

// unmatched returns the route that answers a request the document has no operation for: its
// MethodNotAllowed response when another method of the path is documented, else its NotFound.
// It returns the route and the name of the response.
func (o *OpenAPI) unmatched(req *http.Request) (*routers.Route, string) {
	name, status := "NotFound", http.StatusNotFound
	for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if method == req.Method {
			continue
		}
		other := req.Clone(req.Context())
		other.Method = method
		if _, _, err := o.router.FindRoute(other); err == nil {
			name, status = "MethodNotAllowed", http.StatusMethodNotAllowed
			break
		}
	}
	op := &openapi3.Operation{Responses: openapi3.NewResponses(openapi3.WithStatus(status, o.doc.Components.Responses[name]))}
	return &routers.Route{Spec: o.doc, Path: req.URL.Path, Method: req.Method, Operation: op}, "components.responses." + name
}
