// The id a serve replica gives a call it sends to the replica holding the call's tunnel: `<rid>.<n>`, the
// origin replica's id and a call number unique to its process. Both ends know the form: serve routes
// answers home by its prefix, connect runs a request with such an id at most once.

/** A tunnel id minted by a replica: `<rid>.<n>`. */
export const CROSS_ID = /^([A-Za-z0-9_-]{1,64})\.(\d{1,16})$/;
