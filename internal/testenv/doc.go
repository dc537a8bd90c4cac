// Package testenv gives tests real servers: an embedded FerretDB (MongoDB wire protocol) with a database per test, a private redis-server or Redis Cluster (all started by internal/localdeps), and a local OIDC issuer.
package testenv
