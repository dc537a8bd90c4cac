// Package api holds the OpenAPI description of Support Chat (openapi.yaml) and the tests that
// keep it in step with the routes and problem types of internal/httpapi.
package api
