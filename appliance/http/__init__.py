"""
The HTTP termination API for tenants: C{/sendsms/send}, status and
delivery-report callbacks, Kannel and Jasmin drop-in endpoints, and the
node's operations endpoints (C{/metrics}, C{/healthz}, C{/openapi.json}).
"""
