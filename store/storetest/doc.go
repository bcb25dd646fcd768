// Package storetest is the conformance suite for store.Store
// implementations. Each implementation's tests call Run with a function
// that opens a fresh, empty store; the suite checks only what the comments
// of the store interfaces promise, so that SQLite and PostgreSQL are held
// to the same contract.
//
// It imports the standard library and store only, and is imported from
// tests only.
package storetest
