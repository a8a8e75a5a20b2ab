-- The statements before the last one are setup; the rows of the last one are exported.
-- Creating the table when it is missing lets the example run on a fresh database; in a real
-- deployment the contact centre fills `interactions`.
CREATE TABLE IF NOT EXISTS interactions (
  id          INTEGER PRIMARY KEY,
  agent       TEXT NOT NULL,
  campaign    TEXT NOT NULL,
  started_at  DATETIME NOT NULL,
  finished_at DATETIME,
  disposition TEXT
);

SELECT id, agent, campaign, started_at, finished_at, disposition
FROM interactions
WHERE date(started_at) = date('now', '-1 day')
ORDER BY started_at;
