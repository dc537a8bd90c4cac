// Package testenv starts real servers for tests: an embedded FerretDB (MongoDB wire protocol), a private redis-server, and a local OIDC issuer.
package testenv
