package caddyauth

// ParseJWT exposes the access-token parser to the external tests, so that
// they can tell a token refused for its signature, algorithm, audience or
// expiry from one refused because no session was issued with it.
func (s *Service) ParseJWT(token string) error {
	_, err := s.parseJWT(token)
	return err
}
