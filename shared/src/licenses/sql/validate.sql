SELECT * FROM license_validate($1, $2, $3)
