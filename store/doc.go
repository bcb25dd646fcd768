// Package store defines what Gatehouse keeps: users, sessions and settings,
// the small role interfaces the core needs from a store, and the sentinel
// errors every implementation returns.
//
// It imports the standard library only. Implementations live in
// subpackages (store/sqlite) and must pass the conformance suite in
// store/storetest.
package store
