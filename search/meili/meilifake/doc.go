// Package meilifake is a fake Meilisearch for tests: it validates every
// request it receives and every documented response it sends against
// Meilisearch's published OpenAPI description (search/meili/testdata), and
// emulates just enough of the server for casevault's adapter (indexes,
// settings, documents, tasks, filters, search). It serves over a real TCP
// listener, so `casevault serve` subprocesses can use it as --meili-url.
//
// It is test support only: no non-test code may import it (it imports
// testing and reports protocol violations through the test that started
// it). TestNotLinkedIntoTheBinary asserts that cmd/casevault does not
// depend on it.
package meilifake
