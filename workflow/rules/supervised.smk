# Phase rules of 'supervised' are added here by its issue; nothing is defined yet.
