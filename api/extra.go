package api

// addExtraRoutes registers the routes of packages wired after the
// foundation (search, attachments, audit).
func (s *Server) addExtraRoutes() {
	s.addSearchRoutes()
	s.addAuditRoutes()
	s.addAttachmentRoutes()
	s.addRetentionRoutes()
}
