// Package gotests is temper's integration test suite for the official Temporal Go SDK.
//
// All code lives in _test.go files: TestMain (server_test.go) starts a dev server
// (temper, or the reference Temporal server with TEMPER_TEST_SERVER=temporal) on a free
// loopback port and every test runs workers and clients of the Go SDK against it.
// Run it with tests/go/run; see README.md.
package gotests
