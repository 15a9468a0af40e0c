package meili

import (
	"testing"

	"github.com/casevault/casevault/search/meili/meilifake"
)

// The fake Meilisearch lives in meilifake so that cmd/casevault's replica
// tests can run serve against it too; these names keep this package's
// tests reading as before.
type (
	fakeMeili = meilifake.Server
	fakeIndex = meilifake.Index
	apiErr    = meilifake.APIErr
	recorded  = meilifake.Recorded
)

const testAPIKey = meilifake.APIKey

func newFake(t testing.TB) *fakeMeili { return meilifake.New(t) }

func newFakeIndex(uid, pk string) *fakeIndex { return meilifake.NewIndex(uid, pk) }

func newAPIErr(code, typ, msg string) *apiErr { return meilifake.NewAPIErr(code, typ, msg) }

func parsePredicate(s string) (meilifake.Predicate, error) { return meilifake.ParsePredicate(s) }

func readString(s string) (val, rest string, err error) { return meilifake.ReadString(s) }
