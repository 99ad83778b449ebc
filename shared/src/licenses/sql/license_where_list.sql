WHERE ($1::text IS NULL OR lower(l.email) = lower($1::text))
  AND ($2::text IS NULL OR l.status = $2::text)
  AND ($3::uuid IS NULL OR l.id < $3::uuid)
ORDER BY l.id DESC LIMIT $4
