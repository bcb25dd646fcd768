package gatehouse

import (
	"os"
	"testing"

	"github.com/gatehouse-caddy/gatehouse/store/postgres/pgtest"
)

// The tests that need PostgreSQL share one throwaway cluster, each with
// databases of its own; it is removed when they are done.
func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}
