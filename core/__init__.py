"""The foundation under every app: no models, no app imports.

Public ids, the domain error base, the strict JSON reader and parser, the one outbound HTTP client,
money and its model field, contact-field normalization and the offer's field schema, the request
cache, the API's strict serializers, the admin's shared pieces, and the hooks through which a lower
app tells an upper one that something happened (see docs/decisions.md, "A foundation package").
"""
