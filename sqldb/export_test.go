package sqldb

// WriterCheckpointPages is the writer's backstop threshold, for the test
// that checks the WAL stays bounded by it.
const WriterCheckpointPages = writerCheckpointPages
