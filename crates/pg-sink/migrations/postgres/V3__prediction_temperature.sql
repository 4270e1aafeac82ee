-- The reading each prediction was made after, so that the dashboard draws the readings
-- against the forecast band. Null for predictions stored before it was sent.

ALTER TABLE sensor_predictions ADD COLUMN temperature double precision;
