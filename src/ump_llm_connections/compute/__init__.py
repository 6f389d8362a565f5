"""AI Compute: AWS spot GPU instances that serve a model and register themselves as connections.

``aws.py`` is EC2 through boto3 (loaded on first use, calls in threads), ``spot.py`` the service
the API uses and the one way an instance's state changes, ``reconciler.py`` the background work
that follows EC2, adopts tagged instances, expires leases and activates endpoints that answer.
"""
