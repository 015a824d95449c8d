"""
sampy_twisted: SAMP (the IVOA Simple Application Messaging Protocol) for
Twisted.  Everything that talks to a hub returns a Deferred.
"""
