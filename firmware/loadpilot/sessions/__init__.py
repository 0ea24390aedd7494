# charging sessions and authorization (docs/authorization.md)
