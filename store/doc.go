// Package store defines what Gatehouse keeps: users, sessions, settings,
// the tokens sent by mail and the outbox of mail to deliver,
// the small role interfaces the core needs from a store, and the sentinel
// errors every implementation returns.
//
// It imports the standard library only. Implementations live in
// subpackages (store/sqlite) and must pass the conformance suite in
// store/storetest.
package store
