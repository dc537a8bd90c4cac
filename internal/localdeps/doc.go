// Package localdeps runs the service's dependencies on this machine, for chatd-dev, the tests
// (through internal/testenv) and the benchmarks: FerretDB on SQLite files or on a PostgreSQL
// database, in this process or in a child process; a private redis-server on a free loopback
// port; a local Redis Cluster. Child processes die with this process, and what a process that
// was killed left behind (temporary directories, test databases) is removed by the next one.
// Nothing here is linked into chatd.
package localdeps
